"""The bench's call-count part runs, and its counts are what the code promises (counts, not timings)."""

from __future__ import annotations

import pytest

from scripts.bench import cost, counts

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def rows() -> dict[str, counts.Row]:
    return {r.name: r for r in counts.run(quick=True) if not r.name.startswith("  ")}


def test_steady_state_message_makes_one_call_to_8x8_and_fetches_no_token(rows: dict[str, counts.Row]) -> None:
    for name in (
        "steady-state message (accept + deliver)",
        "reopen: message after AGENT_LEFT",
        "reopen: message after the customer left",
    ):
        row = rows[name]
        assert row.of("8x8", "post_message") == 1, name
        assert row.cc == 1, name  # no token, no key, no new conversation
        assert row.of("sqs", "SendMessage") == 1, name  # the API accept
        assert row.of("dynamodb", "BatchGetItem") == 1, name  # case + delivery record in one read
        # The delivery puts CustomerMessage and MessageDelivered on the timeline: one PutEvents carries both.
        assert row.of("events", "PutEvents") == 1 and row.of("events") == 1, name


def test_webhook_events_call_8x8_never_and_fetch_the_key_once(rows: dict[str, counts.Row]) -> None:
    assert rows["webhook QUEUED, cold container"].of("8x8", "jwk") == 1
    for kind in counts.WEBHOOK_TYPES:
        row = rows[f"webhook {kind}"]
        assert row.cc == 0, kind
        assert row.of("dynamodb", "BatchGetItem") == 1, kind
        assert row.of("dynamodb", "TransactWriteItems") == 1, kind
        assert row.of("events", "PutEvents") == 1, kind
        assert row.of("secretsmanager") == 0, kind


def test_duplicate_webhook_is_two_reads_and_nothing_else(rows: dict[str, counts.Row]) -> None:
    """The receipt, then the case: a retry publishes what its first delivery recorded but did not publish, so it
    looks before answering `duplicate`; when nothing is pending it writes and publishes nothing."""
    row = rows["webhook redelivered (duplicate)"]
    assert dict(row.calls) == {"dynamodb.BatchGetItem": 1, "dynamodb.GetItem": 1}


def test_cold_container_fetches_one_token_and_reads_the_secret_once(rows: dict[str, counts.Row]) -> None:
    row = rows["first message, cold container (accept + deliver)"]
    assert row.of("8x8", "token") == 1
    assert row.of("8x8", "create_conversation") == 1
    assert row.of("8x8", "post_message") == 1
    assert row.of("secretsmanager", "GetSecretValue") == 1
    warm = rows["first message of a new case (accept + deliver)"]
    assert warm.of("8x8", "token") == 0 and warm.of("secretsmanager") == 0


def test_customer_leaves_calls_8x8_once(rows: dict[str, counts.Row]) -> None:
    row = rows["customer leaves"]
    assert row.of("8x8", "customer_leaves") == 1 and row.cc == 1
    assert row.of("events", "PutEvents") == 1


def test_cost_model_adds_up() -> None:
    path = cost.webhook_path(code_ms=1.0, dynamodb=2, events=1, rru=2, wru=6)
    parts = path.breakdown(128)
    assert parts["API Gateway"] == pytest.approx(cost.API_GATEWAY_REST_PER_1M)
    assert parts["DynamoDB"] == pytest.approx(2 * cost.DYNAMODB_PER_1M_RRU + 6 * cost.DYNAMODB_PER_1M_WRU)
    assert path.total(256) > path.total(128) - parts["Lambda"]


def test_the_straightforward_alternative_makes_the_calls_casebridge_saves(rows: dict[str, counts.Row]) -> None:
    from scripts.bench import alternatives  # noqa: PLC0415 - its own moto server, after the counts' one

    (deliver, webhook), batching = alternatives.run(quick=True)
    assert deliver.of("8x8", "token") == 1 and deliver.of("secretsmanager") == 1  # a token per call
    assert webhook.of("8x8", "jwk") == 1 and webhook.aws == 7  # a key per event, read-then-write
    assert rows["webhook TEXT"].aws < webhook.aws
    assert batching.calls_batched * 10 == batching.calls_single
