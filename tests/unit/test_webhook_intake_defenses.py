"""The public webhook's defenses (unknown events kept, bounded key fetches, replay refusal), on both 8x8 APIs'
webhook dialects.

Each test was written to fail on the code before its fix. The real
webhook handler gets API Gateway REST events signed by tests/support/signing.py; AWS is moto.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
import responses

from casebridge.contact_center.webhook_signature import JwkCache, WebhookVerifier
from casebridge.errors import SigningKeyUnavailable
from casebridge.services import build_services, set_services
from casebridge.settings import get_settings
from tests.support.aws import aws_client, load_template
from tests.support.connector import reset_casebridge
from tests.support.fakes import StubJwkFetcher
from tests.support.samples import CONVERSATION_ID, Answer, invoke, sample_api_event, sample_webhook_event
from tests.support.signing import WebhookSigner

CASE = "case-1001"
APIS = ["chat-api-v2", "chat-gateway-v1"]


@pytest.fixture(params=APIS)
def api(
    request: pytest.FixtureRequest,
    casebridge_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    fake_8x8: Any,
    jwk_fetcher: StubJwkFetcher,
) -> str:
    """The connector configured for one 8x8 API (its webhook dialect), 8x8's client faked, keys stubbed."""
    name: str = request.param
    monkeypatch.setenv("EIGHTXEIGHT_API", name)
    reset_casebridge()
    built = build_services(get_settings())
    verifier = WebhookVerifier(built.settings.tenant_id, JwkCache(jwk_fetcher), tolerance_s=300)
    fake_8x8.api = name
    set_services(replace(built, contact_center=fake_8x8, verifier=verifier))
    return name


@pytest.fixture
def metrics_seen(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    from casebridge import observability  # noqa: PLC0415 - after the environment is set

    seen: list[str] = []
    monkeypatch.setattr(observability.metrics, "add_metric", lambda name, **_: seen.append(name))
    return seen


def body_of(api: str, event_type: str, **fields: Any) -> bytes:
    """A webhook body in the API's dialect: v2 is flat, the Gateway nests the event's fields under `data`."""
    envelope: dict[str, Any] = {"eventType": event_type, "conversationId": CONVERSATION_ID}
    envelope["timestamp"] = fields.pop("timestamp", int(time.time() * 1000))
    flat = api == "chat-api-v2"
    payload = {**envelope, "messageType": "SYSTEM", **fields} if flat else {**envelope, "data": fields}
    return json.dumps(payload, separators=(",", ":")).encode()


def queued(api: str, **extra: Any) -> bytes:
    return body_of(api, "QUEUED", queueId="101", queueName="Support", **extra)


def deliver(functions: SimpleNamespace, signer: WebhookSigner, body: bytes, **sign: Any) -> Answer:
    return invoke(functions.webhook, sample_webhook_event("chat-api-v2/webhook_queued.json", signer, body=body, **sign))


def items(services_table: str = "casebridge-cases") -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = aws_client("dynamodb").scan(TableName=services_table)["Items"]
    return sorted(found, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))


def receipts() -> list[dict[str, Any]]:
    return [i for i in items() if i["sk"]["S"] == "RECEIPT"]


def open_case(functions: SimpleNamespace) -> None:
    answer = invoke(functions.lifecycle, sample_api_event("open_conversation.json", case_id=CASE))
    assert answer.status == 201, answer.raw


# ---- item 8: unknown event types are answered 2xx and kept ---------------------------------------------
UNKNOWN: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "chat-api-v2": [("SOMETHING_NEW", {}), ("CONVERSATION_RATED", {"rating": 5})],
    "chat-gateway-v1": [
        ("SOMETHING_NEW", {}),
        ("ACTIVITY", {"name": "cobrowse", "value": {}}),
        ("MEMBERS_CHANGED", {"memberType": "bot", "change": "joined", "id": "bot-1"}),
    ],
}


def test_unknown_event_types_are_200_kept_with_their_body_and_counted(
    functions: SimpleNamespace, api: str, webhook_signer: WebhookSigner, event_bus: Any, metrics_seen: list[str]
) -> None:
    """Item 8: a 4xx would make 8x8 retry the event for ever; it is answered 200 and kept for operators."""
    open_case(functions)
    event_bus.published()
    timeline_before = [i for i in items() if i["sk"]["S"].startswith("EVENT#")]
    for event_type, fields in UNKNOWN[api]:
        body = body_of(api, event_type, **fields)
        event_id = f"evt-{uuid.uuid4()}"
        answer = deliver(functions, webhook_signer, body, event_id=event_id)
        assert (answer.status, answer.body) == (200, {"status": "kept"}), (event_type, answer.raw)
        [receipt] = [r for r in receipts() if r["pk"]["S"].endswith(f"#{event_id}")]
        assert receipt["outcome"]["S"] == "unhandled"
        assert receipt["keptBody"]["S"] == body.decode()
        assert receipt["eventType"]["S"].startswith(event_type)
        again = deliver(functions, webhook_signer, body, event_id=event_id, retry=1)
        assert (again.status, again.body) == (200, {"status": "duplicate"})
    assert metrics_seen.count("WebhookEventsUnhandled") == len(UNKNOWN[api])
    assert [i for i in items() if i["sk"]["S"].startswith("EVENT#")] == timeline_before, "nothing on the timeline"
    assert event_bus.published() == []


# ---- item 9: unauthenticated traffic cannot make 8x8 calls or grow memory without bound -------------
def made_up_kid(kid: str) -> dict[str, Any]:
    """A protected header that passes every check made before a key fetch, naming `kid`."""
    return {"b64": False, "crit": ["b64"], "kid": kid, "alg": "RS256"}


def test_made_up_kids_spend_a_bounded_number_of_key_fetches_then_503(
    functions: SimpleNamespace, api: str, webhook_signer: WebhookSigner, jwk_fetcher: StubJwkFetcher
) -> None:
    """Item 9: every made-up kid used to cost one call to 8x8's key endpoint. Now at most FETCH_BUDGET per
    window; past it, 503 with Retry-After (a genuine new kid is retried by 8x8 later), and the kid already
    known still verifies without a fetch."""
    from casebridge.contact_center.webhook_signature import FETCH_BUDGET  # noqa: PLC0415 - new in the fix

    open_case(functions)
    genuine = deliver(functions, webhook_signer, queued(api))
    assert genuine.status == 200, genuine.raw
    answers = []
    for n in range(FETCH_BUDGET + 15):  # from as many sources: the per-source limit is not what stops them here
        event = sample_webhook_event(
            "chat-api-v2/webhook_queued.json", webhook_signer, body=queued(api), protected=made_up_kid(f"made-up-{n}")
        )
        event["requestContext"]["identity"]["sourceIp"] = f"192.0.2.{n}"
        answers.append(invoke(functions.webhook, event))
    statuses = [a.status for a in answers]
    assert statuses == [401] * (FETCH_BUDGET - 1) + [503] * 16, statuses
    assert all(int(a.headers["retry-after"]) > 0 for a in answers if a.status == 503)
    assert len(jwk_fetcher.calls) == FETCH_BUDGET, "one fetch for the genuine kid, then the budget's rest"
    still = deliver(functions, webhook_signer, queued(api))
    assert still.status == 200, still.raw


def test_unknown_kid_memory_is_bounded_and_least_recent_kids_are_forgotten() -> None:
    """Item 9: the unknown-kid cache used to keep every kid for ever. It holds at most MAX_UNKNOWN_KIDS."""
    from casebridge.contact_center.webhook_signature import MAX_UNKNOWN_KIDS  # noqa: PLC0415 - new in the fix

    fetcher = StubJwkFetcher({})
    now = [0.0]
    cache = JwkCache(fetcher, clock=lambda: now[0], fetch_budget=10_000)
    kids = [f"kid-{n}" for n in range(MAX_UNKNOWN_KIDS + 100)]
    for kid in kids:
        assert cache.get(kid) is None
    assert len(cache._unknown) <= MAX_UNKNOWN_KIDS
    fetched = len(fetcher.calls)
    assert cache.get(kids[-1]) is None and len(fetcher.calls) == fetched, "a recent unknown kid is remembered"
    assert cache.get(kids[0]) is None and len(fetcher.calls) == fetched + 1, "the oldest was forgotten"


@pytest.mark.parametrize("status", [429, 500, 503])
def test_key_endpoint_failures_are_remembered_briefly_per_kid(webhook_signer: WebhookSigner, status: int) -> None:
    """Item 9: a 429/5xx from 8x8's key endpoint used to be retried at every delivery of the kid. Through the
    real HTTP fetcher: the failing kid is not fetched again for a few seconds; another kid is."""
    from casebridge.contact_center.webhook_signature import http_jwk_fetcher  # noqa: PLC0415

    now = [0.0]
    url = "https://api.8x8.test/chat-gateway/v1/jwk/{kid}/public"
    with responses.RequestsMock() as rsps:
        failing = rsps.get(url.format(kid="kid-a"), status=status, headers={"Retry-After": "1"})
        other = rsps.get(url.format(kid="kid-b"), json=webhook_signer.public_jwk)
        cache = JwkCache(http_jwk_fetcher(url), clock=lambda: now[0])
        for _ in range(5):
            with pytest.raises(SigningKeyUnavailable):
                cache.get("kid-a")
        assert failing.call_count == 1
        assert cache.get("kid-b") is not None and other.call_count == 1
        now[0] += 60.0  # the failure is remembered briefly, not for good
        with pytest.raises(SigningKeyUnavailable):
            cache.get("kid-a")
        assert failing.call_count == 2


# ---- item 10: a receipt with a body hash for every verified event; another body kept as a suspect --------
def test_same_event_id_with_another_body_is_kept_as_a_suspect_not_refused(
    functions: SimpleNamespace, api: str, webhook_signer: WebhookSigner, event_bus: Any, metrics_seen: list[str]
) -> None:
    """Item 10: the signature covers only a CRC32 of the body. A second body under an event id on file is not
    refused (the genuine one may be the second): it is recorded under its own receipt, flagged bodyConflict with
    the first, counted; the same body again is a duplicate."""
    open_case(functions)
    event_bus.published()
    body = queued(api)
    assert deliver(functions, webhook_signer, body, event_id="evt-1").body == {"status": "accepted"}
    other = body_of(api, "QUEUED", queueId="999", queueName="Elsewhere")
    second = deliver(functions, webhook_signer, other, event_id="evt-1", retry=1)
    assert (second.status, second.body) == (200, {"status": "accepted"}), second.raw
    assert metrics_seen.count("WebhookBodyConflicts") == 1
    flagged = [r for r in items() if r["pk"]["S"].endswith("#evt-1") and r["sk"]["S"].startswith("RECEIPT")]
    assert len(flagged) == 2 and all(r["bodyConflict"]["BOOL"] for r in flagged)
    for again, retry in ((body, 2), (other, 3)):
        same = deliver(functions, webhook_signer, again, event_id="evt-1", retry=retry)
        assert (same.status, same.body) == (200, {"status": "duplicate"})
    published = [e["detail"] for e in event_bus.published()]
    assert published[0]["eventId"] == "evt-1"
    assert published[1]["eventId"].startswith("evt-1:") and published[1]["bodyConflict"] is True


def test_verify_and_malformed_events_leave_receipts_and_another_body_is_kept_beside_them(
    functions: SimpleNamespace, api: str, webhook_signer: WebhookSigner, metrics_seen: list[str]
) -> None:
    """Item 10: WEB_HOOK_VERIFY and events answered 400 leave a receipt (with the body's hash) too; another body
    under the same id is kept beside it as a suspect."""
    verify = json.dumps({"eventType": "WEB_HOOK_VERIFY"}).encode()
    malformed = body_of(api, "QUEUED", timestamp=-1)
    for event_id, body, status in (("evt-verify", verify, 200), ("evt-malformed", malformed, 400)):
        first = deliver(functions, webhook_signer, body, event_id=event_id)
        assert first.status == status, first.raw
        [receipt] = [r for r in receipts() if r["pk"]["S"].endswith(f"#{event_id}")]
        assert len(receipt["bodySha256"]["S"]) == 64
        other = deliver(functions, webhook_signer, queued(api), event_id=event_id, retry=1)
        assert other.status == 200, other.raw
        same = deliver(functions, webhook_signer, body, event_id=event_id, retry=2)
        assert (same.status, same.body) == (200, {"status": "duplicate"})
    assert metrics_seen.count("WebhookBodyConflicts") == 2


def test_webhook_tolerance_has_a_maximum_far_below_the_receipt_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 10: a replay inside the window always meets its receipt: the window's maximum (template and
    settings) stays far below the receipt TTL."""
    from casebridge.errors import ConfigurationError  # noqa: PLC0415
    from casebridge.settings import load_settings  # noqa: PLC0415

    parameter = load_template()["Parameters"]["WebhookToleranceSeconds"]
    maximum = int(parameter["MaxValue"])
    base = {"CASES_TABLE_NAME": "t", "EIGHTXEIGHT_TENANT_ID": "acme"}
    settings = load_settings({**base, "WEBHOOK_TOLERANCE_SECONDS": str(maximum)})
    assert settings.webhook_tolerance_seconds == maximum
    with pytest.raises(ConfigurationError):
        load_settings({**base, "WEBHOOK_TOLERANCE_SECONDS": str(maximum + 1)})
    assert maximum < settings.webhook_receipt_ttl_days * 86_400 / 100


@pytest.mark.parametrize("api", ["chat-gateway-v1"], indirect=True)  # only the Gateway echoes our own posts
def test_gateway_echo_of_our_own_post_keeps_a_receipt_without_the_customer_text(
    functions: SimpleNamespace, api: str, webhook_signer: WebhookSigner, event_bus: Any
) -> None:
    """8x8 echoes every user/bot post back on the Gateway: known (casebridge recorded the post's fingerprint), not
    acted on, so the receipt holds the body's hash (a retry is a duplicate) but not the text again."""
    from casebridge.events import message_fingerprint  # noqa: PLC0415
    from casebridge.services import get_services  # noqa: PLC0415

    open_case(functions)
    event_bus.published()
    text = "my card number is in here"
    get_services().store.record_posted(CASE, message_fingerprint(text))
    body = body_of(api, "MESSAGE", sender={"type": "user", "id": "u-1"}, text=text, messageId="m-1")
    event_id = f"evt-{uuid.uuid4()}"
    answer = deliver(functions, webhook_signer, body, event_id=event_id)
    assert (answer.status, answer.body) == (200, {"status": "kept"}), answer.raw
    [receipt] = [r for r in receipts() if r["pk"]["S"].endswith(f"#{event_id}")]
    assert receipt["outcome"]["S"] == "unhandled" and "keptBody" not in receipt
    assert text not in json.dumps(receipt)
    assert event_bus.published() == []
    again = deliver(functions, webhook_signer, body, event_id=event_id, retry=1)
    assert (again.status, again.body) == (200, {"status": "duplicate"})
