"""A throttled read of a case is "busy, retry shortly" (503 with Retry-After), like a throttled write, not a 500."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from casebridge.errors import StoreBusy
from casebridge.store import CaseStore


class ThrottlingTable:
    def get_item(self, **_: Any) -> Any:
        error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}
        raise ClientError(error, "GetItem")  # type: ignore[arg-type]


class BrokenTable:
    def get_item(self, **_: Any) -> Any:
        raise ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "no table"}}, "GetItem")


def test_a_throttled_case_read_is_store_busy() -> None:
    with pytest.raises(StoreBusy) as raised:
        CaseStore("cases", client=ThrottlingTable()).get_case("case-1")  # type: ignore[arg-type]
    assert raised.value.status_code == 503 and raised.value.retry_after == 1


def test_another_failure_of_a_case_read_is_not_taken_for_busy() -> None:
    with pytest.raises(ClientError):
        CaseStore("cases", client=BrokenTable()).get_case("case-1")  # type: ignore[arg-type]
