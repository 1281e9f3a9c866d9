"""business_api.http against hostile or careless input (Content-Type, integers, caseId):
every answer is a JSON error with a 4xx, never a 500, and nothing reaches 8x8 or the table."""

from __future__ import annotations

import base64
from types import SimpleNamespace
from typing import Any

import pytest

from casebridge.business_api.http import is_json_media_type
from tests.support.fakes import FakeContactCenter
from tests.support.samples import Answer, invoke, sample_api_event, sample_webhook_event


def assert_error(answer: Answer, status: int, code: str) -> None:
    assert answer.status == status, answer.raw
    assert answer.headers.get("content-type", "").startswith("application/json")
    assert set(answer.body) == {"error"}
    assert answer.body["error"]["code"] == code
    assert answer.body["error"]["message"]


def open_case(functions: SimpleNamespace, case_id: str = "case-1001") -> None:
    answer = invoke(functions.lifecycle, sample_api_event("open_conversation.json", case_id=case_id))
    assert answer.status == 201, answer.raw


# ---- integers are ASCII digits -------------------------------------------------------------------
@pytest.mark.parametrize(
    "limit",
    [
        "\u00b2",  # superscript two: isdigit() is True, int() raises (was a 500)
        "\u0663",  # Arabic-Indic three: isdigit() is True and int() reads 3 (was accepted)
        "\uff15",  # fullwidth five
        "9" * 5000,  # more digits than int() converts (was a 500)
        " 5",
        "5 ",
        "+5",
        "-1",
        "0x10",
        "",
        "0",
        "101",
    ],
)
def test_limit_must_be_ascii_digits_in_range(functions: SimpleNamespace, services: Any, limit: str) -> None:
    open_case(functions)
    answer = invoke(functions.lifecycle, sample_api_event("case_events.json", query={"limit": limit}))
    assert_error(answer, 400, "InvalidRequest")
    assert "limit" in answer.body["error"]["message"]


@pytest.mark.parametrize("limit", ["1", "100", "007"])
def test_ascii_limits_in_range_are_read(functions: SimpleNamespace, services: Any, limit: str) -> None:
    open_case(functions)
    answer = invoke(functions.lifecycle, sample_api_event("case_events.json", query={"limit": limit}))
    assert answer.status == 200, answer.raw
    assert len(answer.body["events"]) <= int(limit)


# ---- bodies are JSON -----------------------------------------------------------------------------
NOT_JSON = ["text/plain", "application/x-www-form-urlencoded", "application/xml", "application/jsonp", "text/json"]


@pytest.mark.parametrize("content_type", NOT_JSON)
@pytest.mark.parametrize("sample", ["open_conversation.json", "post_message.json"])
def test_a_body_of_another_type_is_415(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter, sample: str, content_type: str
) -> None:
    module = functions.lifecycle if sample == "open_conversation.json" else functions.outbound
    answer = invoke(module, sample_api_event(sample, headers={"Content-Type": content_type}))
    assert_error(answer, 415, "UnsupportedMediaType")
    assert fake_8x8.created == [] and fake_8x8.sent == []
    assert invoke(functions.lifecycle, sample_api_event("get_case.json")).status == 404


def test_a_binary_body_is_415(functions: SimpleNamespace, services: Any) -> None:
    event = sample_api_event("post_message.json", headers={"Content-Type": "application/octet-stream"})
    event["body"], event["isBase64Encoded"] = base64.b64encode(b'{"text": "hi"}').decode(), True
    assert_error(invoke(functions.outbound, event), 415, "UnsupportedMediaType")


def test_a_delete_with_a_text_body_is_415(functions: SimpleNamespace, services: Any) -> None:
    open_case(functions)
    event = sample_api_event("customer_leaves.json", body="bye", headers={"Content-Type": "text/plain"})
    assert_error(invoke(functions.lifecycle, event), 415, "UnsupportedMediaType")
    assert invoke(functions.lifecycle, sample_api_event("get_case.json")).body["state"] != "closed"


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON", "application/vnd.acme+json", None],
)
def test_json_types_and_no_type_are_accepted(
    functions: SimpleNamespace, services: Any, content_type: str | None
) -> None:
    event = sample_api_event("open_conversation.json", headers={"Content-Type": content_type})
    answer = invoke(functions.lifecycle, event)
    assert answer.status == 201, answer.raw


def test_no_body_needs_no_type(functions: SimpleNamespace, services: Any) -> None:
    open_case(functions)
    event = sample_api_event("get_case.json", headers={"Content-Type": "text/plain"})
    assert invoke(functions.lifecycle, event).status == 200


def test_the_webhook_takes_any_type(functions: SimpleNamespace, services: Any, webhook_signer: Any) -> None:
    """8x8 must never get a 4xx for a genuine event: the signature decides, not the Content-Type."""
    open_case(functions)
    event = sample_webhook_event("chat-api-v2/webhook_queued.json", webhook_signer)
    for name in [k for k in event["headers"] if k.lower() == "content-type"]:
        del event["headers"][name]
        event["multiValueHeaders"].pop(name, None)
    event["headers"]["Content-Type"] = "text/plain; charset=iso-8859-1"
    answer = invoke(functions.webhook, event)
    assert answer.status == 200, answer.raw


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("application/json", True),
        ("application/problem+json;charset=utf-8", True),
        ("application/json-seq", False),
        ("application/+json", False),
        ("multipart/form-data; boundary=x", False),
        ("", True),
        (None, True),
    ],
)
def test_json_media_types(value: str | None, expected: bool) -> None:
    assert is_json_media_type(value) is expected


# ---- caseId as REST API Gateway delivers it (path percent-encoded) -------------------------------
def encoded_path_event(sample: str, encoded: str, decoded: str) -> dict[str, Any]:
    """What API Gateway hands the function: `path` as sent (percent-encoded), pathParameters decoded."""
    event: dict[str, Any] = sample_api_event(sample)
    event["path"] = event["path"].replace("case-1001", encoded, 1)
    event["requestContext"]["path"] = event["requestContext"]["path"].replace("case-1001", encoded, 1)
    event["pathParameters"] = {"caseId": decoded}
    return event


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [("a%2Fb", "a/b"), ("a%2fb", "a/b"), ("abc%0A", "abc\n"), ("a%FFb", "a\ufffdb"), ("a%20b", "a b")],
)
def test_encoded_invalid_case_ids_are_400(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter, encoded: str, decoded: str
) -> None:
    answer = invoke(functions.lifecycle, encoded_path_event("open_conversation.json", encoded, decoded))
    assert_error(answer, 400, "InvalidRequest")
    assert "caseId" in answer.body["error"]["message"]
    assert fake_8x8.created == []


def test_an_encoded_valid_case_id_is_the_decoded_case(functions: SimpleNamespace, services: Any) -> None:
    answer = invoke(functions.lifecycle, encoded_path_event("open_conversation.json", "order%3A42", "order:42"))
    assert answer.status == 201, answer.raw
    assert answer.body["caseId"] == "order:42"
    again = invoke(functions.lifecycle, sample_api_event("get_case.json", case_id="order:42"))
    assert again.status == 200 and again.body["caseId"] == "order:42"
