"""functions/conversation_lifecycle: open a case's conversation, the customer leaving, reading a case."""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import replace
from types import SimpleNamespace
from typing import Any, cast

import boto3
import pytest
import requests
import responses

from casebridge.errors import ContactCenterUnavailable
from casebridge.services import set_services
from casebridge.store import CaseStore
from tests.support.aws import aws_client
from tests.support.fakes import FakeContactCenter
from tests.support.samples import CONVERSATION_ID, Answer, invoke, load_event, sample_api_event

BASE = "https://api.8x8.test"
TENANT_PATH = f"{BASE}/vcc/us/chat/v2/tenant/acme-tenant"
CASE = "case-1001"


def call(functions: SimpleNamespace, name: str, **adapt: Any) -> Answer:
    return invoke(functions.lifecycle, sample_api_event(name, **adapt))


def assert_error(answer: Answer, status: int, code: str) -> dict[str, Any]:
    assert answer.status == status, answer.raw
    assert answer.headers.get("content-type", "").startswith("application/json")
    assert set(answer.body) == {"error"}
    error: dict[str, Any] = answer.body["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in answer.raw and 'File "' not in answer.raw
    return error


def table_items(services: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = aws_client("dynamodb").scan(TableName=services.settings.cases_table_name)["Items"]
    return items


# ---- open ----------------------------------------------------------------------------------------
def test_sample_event_opens_the_conversation(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter, event_bus: Any
) -> None:
    answer = call(functions, "open_conversation.json")
    assert answer.status == 201, answer.raw
    assert answer.body["caseId"] == CASE
    assert answer.body["conversationId"] == CONVERSATION_ID
    assert answer.body["channelId"] == "channel-1"
    assert answer.body["state"] == "open"
    [created] = fake_8x8.created
    assert created["channelId"] == "channel-1"
    assert created["customer"] == {
        "caseId": CASE,
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "customerId": "cust-42",
        "company": "Analytical Engines Ltd",
        "language": "en",
        "plan": "gold",
        "orderId": "A-7781",
    }
    assert [(m.author_type, m.text) for m in created["history"]] == [
        ("bot", "Hello! How can I help?"),
        ("user", "My order A-7781 has not arrived."),
        ("bot", "Let me hand you over to a person."),
    ]
    published, *history = event_bus.published()
    assert published["detail-type"] == "ConversationOpened"
    # The open's history is on the timeline and the bus too, as the agent saw it (the transcript has it).
    assert [(e["detail-type"], e["detail"]["authorType"], e["detail"]["history"]) for e in history] == [
        ("CustomerMessage", "bot", True),
        ("CustomerMessage", "user", True),
        ("CustomerMessage", "bot", True),
    ]
    assert published["source"] == "casebridge"
    assert published["detail"]["caseId"] == CASE and published["detail"]["conversationId"] == CONVERSATION_ID


def test_one_conversation_per_case(functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter) -> None:
    first = call(functions, "open_conversation.json")
    second = call(functions, "open_conversation.json")
    assert (first.status, second.status) == (201, 200)
    assert first.body["conversationId"] == second.body["conversationId"] == CONVERSATION_ID
    assert len(fake_8x8.created) == 1


class SerialisedClient:
    """moto applies conditional writes without a lock; real DynamoDB is atomic per item. Serialise calls."""

    _lock = threading.Lock()

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return method(*args, **kwargs)

        return locked


def test_concurrent_opens_create_one_conversation(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter
) -> None:
    store = CaseStore(services.settings.cases_table_name, client=cast(Any, SerialisedClient(boto3.client("dynamodb"))))
    set_services(replace(services, store=store))
    real_create = fake_8x8.create_conversation

    def slow_create(*args: Any, **kwargs: Any) -> str:
        time.sleep(0.3)
        return real_create(*args, **kwargs)

    fake_8x8.create_conversation = slow_create  # type: ignore[method-assign]
    answers: list[Answer] = []
    threads = [
        threading.Thread(target=lambda: answers.append(call(functions, "open_conversation.json"))) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert sorted(a.status for a in answers) == [200, 201]
    assert len(fake_8x8.created) == 1


def test_open_with_no_body_uses_defaults(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter
) -> None:
    answer = call(functions, "open_conversation.json", case_id="case-empty", body=None)
    assert answer.status == 201, answer.raw
    assert fake_8x8.created[0]["customer"] == {"caseId": "case-empty"}
    assert fake_8x8.created[0]["history"] == []


def test_open_with_a_channel_override(functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter) -> None:
    answer = call(functions, "open_conversation.json", body={"channelId": "vip-channel"})
    assert answer.status == 201
    assert answer.body["channelId"] == "vip-channel"
    assert fake_8x8.created[0]["channelId"] == "vip-channel"


@pytest.mark.parametrize("body", ["{not json", "[1, 2]", '"text"', "\xff"])
def test_malformed_body_is_400_and_writes_nothing(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter, body: str
) -> None:
    answer = call(functions, "open_conversation.json", body=body)
    assert_error(answer, 400, "InvalidRequest")
    assert fake_8x8.created == []
    assert table_items(services) == []


def test_invalid_base64_body_is_400(functions: SimpleNamespace, services: Any) -> None:
    event = sample_api_event("open_conversation.json", body="@@not base64@@")
    event["isBase64Encoded"] = True
    assert_error(invoke(functions.lifecycle, event), 400, "InvalidRequest")


def test_base64_body_is_decoded(functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter) -> None:
    event = load_event("open_conversation.json")
    event["body"] = base64.b64encode(event["body"].encode()).decode()
    event["isBase64Encoded"] = True
    assert invoke(functions.lifecycle, event).status == 201
    assert fake_8x8.created[0]["customer"]["name"] == "Ada Lovelace"


@pytest.mark.parametrize("case_id", ["bad!id", "x" * 129, "a%20b", "semi;colon"])
def test_bad_case_id_is_400(functions: SimpleNamespace, services: Any, case_id: str) -> None:
    for name in ("open_conversation.json", "get_case.json", "case_events.json", "customer_leaves.json"):
        answer = call(functions, name, case_id=case_id)
        error = assert_error(answer, 400, "InvalidRequest")
        assert "caseId" in error["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"history": [{"authorType": "user", "text": "x" * 4097}]}, "history.0.text"),
        ({"history": [{"authorType": "user", "text": ""}]}, "history.0.text"),
        ({"history": [{"authorType": "agent", "text": "hi"}]}, "history.0.authorType"),
        ({"history": [{"authorType": "user", "text": "hi"}] * 201}, "history"),
        ({"customer": {"name": "A", "properties": {f"p{n}": "v" for n in range(29)}}}, "customer"),
        ({"customer": {"properties": {"caseId": "other"}}}, "customer.properties"),
        ({"customer": {"properties": {"1bad": "v"}}}, "customer.properties.[key]"),
        ({"customer": {"email": "not-an-email"}}, "customer.email"),
        ({"customer": {"language": "english"}}, "customer.language"),
        ({"surprise": True}, "surprise"),
        ({"channelId": "../other"}, "channelId"),
    ],
)
def test_invalid_open_request_is_400_with_details(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter, body: dict[str, Any], field: str
) -> None:
    answer = call(functions, "open_conversation.json", body=body)
    error = assert_error(answer, 400, "InvalidRequest")
    fields = [d["field"] for d in error["details"]]
    assert any(f.startswith(field) for f in fields), fields
    assert fake_8x8.created == []


def test_exactly_the_customer_property_limit_is_accepted(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter
) -> None:
    body = {"customer": {"name": "A", "properties": {f"p{n}": "v" for n in range(28)}}}  # 28 + name + caseId = 30
    assert call(functions, "open_conversation.json", body=body).status == 201
    assert len(fake_8x8.created[0]["customer"]) == 30


def test_200_history_messages_are_accepted(functions: SimpleNamespace, services: Any) -> None:
    body = {"history": [{"authorType": "user", "text": "hi"}] * 200}
    assert call(functions, "open_conversation.json", body=body).status == 201


def test_body_too_large_is_413(functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter) -> None:
    answer = call(functions, "open_conversation.json", body='{"history": [], "pad": "' + "x" * (256 * 1024) + '"}')
    assert_error(answer, 413, "PayloadTooLarge")
    assert fake_8x8.created == []


def test_unexpected_error_is_a_json_500_without_stack_trace(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter
) -> None:
    fake_8x8.errors["create"] = [RuntimeError("secret internals at /opt/python/x.py line 3")]
    answer = call(functions, "open_conversation.json")
    error = assert_error(answer, 500, "InternalError")
    assert "secret internals" not in answer.raw
    assert error["message"] == "internal error; it was logged"


def test_failed_create_releases_the_claim(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter
) -> None:
    fake_8x8.errors["create"] = [ContactCenterUnavailable("down", upstream_status=503)]
    assert_error(call(functions, "open_conversation.json"), 503, "ContactCenterUnavailable")
    assert call(functions, "open_conversation.json").status == 201, "the next attempt must not wait for a lease"


# ---- 8x8 errors through the real client (`responses` stands in for 8x8) ---------------------------
@pytest.fixture
def real_8x8(real_services: Any) -> Any:
    set_services(real_services)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.post(f"{BASE}/oauth/v2/token", json={"access_token": "tok", "expires_in": "3600"})
        yield rsps


def test_8x8_refusing_the_configured_channel_is_a_configuration_error(
    functions: SimpleNamespace, real_8x8: Any
) -> None:
    real_8x8.post(
        f"{TENANT_PATH}/conversations",
        status=400,
        json={"message": "bad", "errors": [{"code": "CHANNEL_NOT_FOUND", "message": "no channel"}]},
    )
    answer = call(functions, "open_conversation.json")
    error = assert_error(answer, 500, "ContactCenterMisconfigured")
    assert error["upstream"] == {"status": 400, "code": "CHANNEL_NOT_FOUND"}


def test_8x8_429_is_503_with_retry_after(functions: SimpleNamespace, real_8x8: Any) -> None:
    real_8x8.post(f"{TENANT_PATH}/conversations", status=429, headers={"Retry-After": "12"}, json={})
    answer = call(functions, "open_conversation.json")
    error = assert_error(answer, 503, "ContactCenterUnavailable")
    assert error["upstream"]["status"] == 429
    assert answer.headers["retry-after"] == "12"


def test_8x8_timeout_is_503(functions: SimpleNamespace, real_8x8: Any) -> None:
    real_8x8.post(f"{TENANT_PATH}/conversations", body=requests.ReadTimeout("slow"))
    assert_error(call(functions, "open_conversation.json"), 503, "ContactCenterUnavailable")


def test_open_through_the_real_client(functions: SimpleNamespace, real_8x8: Any) -> None:
    route = real_8x8.post(f"{TENANT_PATH}/conversations", status=202, json={"conversationId": "conv-real"})
    answer = call(functions, "open_conversation.json")
    assert answer.status == 201 and answer.body["conversationId"] == "conv-real"
    assert route.calls[0].request.headers["Authorization"] == "Bearer tok"


def test_customer_leaves_tolerates_8x8_404(functions: SimpleNamespace, real_8x8: Any) -> None:
    real_8x8.post(f"{TENANT_PATH}/conversations", status=202, json={"conversationId": "conv-real"})
    real_8x8.delete(f"{TENANT_PATH}/conversations/conv-real/participants/customer", status=404, json={})
    assert call(functions, "open_conversation.json").status == 201
    answer = call(functions, "customer_leaves.json")
    assert answer.status == 200 and answer.body["state"] == "closed"


# ---- customer leaves -----------------------------------------------------------------------------
def test_customer_leaves_closes_the_case_once(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter, event_bus: Any
) -> None:
    assert call(functions, "open_conversation.json").status == 201
    event_bus.published()
    first = call(functions, "customer_leaves.json")
    assert first.status == 200, first.raw
    assert first.body["state"] == "closed"
    assert fake_8x8.left == [CONVERSATION_ID]
    second = call(functions, "customer_leaves.json")
    assert second.status == 200 and second.body["state"] == "closed"
    assert fake_8x8.left == [CONVERSATION_ID], "leaving a closed case does not call 8x8 again"
    assert [e["detail-type"] for e in event_bus.published()] == ["CustomerLeft"]


def test_customer_leaves_unknown_case_is_404(functions: SimpleNamespace, services: Any) -> None:
    assert_error(call(functions, "customer_leaves.json", case_id="nobody"), 404, "CaseNotFound")


def test_customer_leaves_while_opening_is_409(functions: SimpleNamespace, services: Any) -> None:
    assert services.store.claim_opening(CASE, 30_000)
    answer = call(functions, "customer_leaves.json")
    assert_error(answer, 409, "Conflict")
    assert answer.headers["retry-after"] == "1"


def test_customer_leaves_8x8_failure_keeps_the_case_open(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter
) -> None:
    call(functions, "open_conversation.json")
    fake_8x8.errors["leave"] = [ContactCenterUnavailable("boom", upstream_status=500)]
    assert_error(call(functions, "customer_leaves.json"), 503, "ContactCenterUnavailable")
    assert call(functions, "get_case.json").body["state"] == "open"


# ---- reading -------------------------------------------------------------------------------------
def test_get_case(functions: SimpleNamespace, services: Any) -> None:
    call(functions, "open_conversation.json")
    answer = call(functions, "get_case.json")
    assert answer.status == 200
    assert {k: answer.body[k] for k in ("caseId", "conversationId", "state", "agent", "queue")} == {
        "caseId": CASE,
        "conversationId": CONVERSATION_ID,
        "state": "open",
        "agent": None,
        "queue": None,
    }


def test_get_unknown_case_is_404(functions: SimpleNamespace, services: Any) -> None:
    assert_error(call(functions, "get_case.json", case_id="case-unknown"), 404, "CaseNotFound")


def test_case_events_pages(functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter) -> None:
    call(functions, "open_conversation.json", body='{"customer": {"name": "Ada"}}')  # no history: two events
    call(functions, "customer_leaves.json")
    first = call(functions, "case_events.json", query={"limit": "1"})
    assert first.status == 200, first.raw
    assert [e["type"] for e in first.body["events"]] == ["ConversationOpened"]
    assert first.body["events"][0]["caseId"] == CASE
    second = call(functions, "case_events.json", query={"limit": "1", "after": first.body["next"]})
    assert [e["type"] for e in second.body["events"]] == ["CustomerLeft"]
    third = call(functions, "case_events.json", query={"limit": "1", "after": second.body["next"]})
    assert third.body["events"] == []
    whole = call(functions, "case_events.json")
    assert [e["type"] for e in whole.body["events"]] == ["ConversationOpened", "CustomerLeft"]


@pytest.mark.parametrize(
    "query", [{"limit": "0"}, {"limit": "101"}, {"limit": "ten"}, {"limit": "-1"}, {"after": "%%"}]
)
def test_case_events_bad_query_is_400(functions: SimpleNamespace, services: Any, query: dict[str, str]) -> None:
    call(functions, "open_conversation.json")
    assert_error(call(functions, "case_events.json", query=query), 400, "InvalidRequest")


def test_case_events_unknown_case_is_404(functions: SimpleNamespace, services: Any) -> None:
    assert_error(call(functions, "case_events.json", case_id="nobody"), 404, "CaseNotFound")


def test_unknown_route_is_a_json_404(functions: SimpleNamespace, services: Any) -> None:
    event = sample_api_event("get_case.json")
    event["path"] = "/cases/case-1001/elsewhere"
    event["resource"] = "/cases/{caseId}/elsewhere"
    assert_error(invoke(functions.lifecycle, event), 404, "RouteNotFound")
