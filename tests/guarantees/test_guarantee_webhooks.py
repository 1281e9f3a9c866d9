"""Webhook intake guarantees, through the real webhook handler (API Gateway events), AWS on moto, keys from
the emulator's JWK endpoint over HTTP."""
# ruff: noqa: PLC0415 - imports that must wait for moto, the environment or sys.path

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from casebridge.contact_center.webhook_signature import FAILED_KID_TTL_S
from tests.guarantees.cb_guarantees_harness import Harness, signed_headers
from tests.support.connector import map_case
from tests.support.events import EVENT_EXTRAS, webhook_body, webhook_event
from tests.support.lambdas import LambdaContext, load_function
from tests.support.signing import b64url


def now_ms() -> int:
    return int(time.time() * 1000)


def answer_of(result: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return int(result["statusCode"]), json.loads(result["body"] or "{}")


def entries_for(h: Harness, event_id: str) -> list[dict[str, Any]]:
    return [i for i in h.table_items() if i.get("eventId") == event_id and i["sk"].startswith("EVENT#")]


def receipts(h: Harness) -> list[dict[str, Any]]:
    """Receipts of case events (8x8's WEB_HOOK_VERIFY at provisioning leaves one too: not counted here)."""
    return [i for i in h.table_items() if i["sk"] == "RECEIPT" and i.get("outcome") != "verify"]


@pytest.fixture
def case(harness: Harness) -> tuple[str, str]:
    case_id, conversation_id = f"case-{uuid.uuid4().hex[:8]}", f"conv-{uuid.uuid4().hex[:8]}"
    map_case(case_id, conversation_id)
    return case_id, conversation_id


def test_redelivery_has_one_effect(harness: Harness, case: tuple[str, str]) -> None:
    h, (case_id, conv) = harness, case
    body = webhook_body("AGENT_JOINED", conv, now_ms(), **EVENT_EXTRAS["AGENT_JOINED"])
    first = signed_headers(h.emulator, body, retry=0)
    status, answer = answer_of(h.bridge.call(first, body))
    assert (status, answer["status"]) == (200, "accepted")
    version_after_first = next(i for i in h.table_items() if i["pk"] == f"CASE#{case_id}" and i["sk"] == "CASE")
    time.sleep(0.01)
    again = signed_headers(h.emulator, body, event_id=first["x-8x8-event-id"], retry=1)  # new retry, new tt
    assert again["x-8x8-transmission-time"] != first["x-8x8-transmission-time"]
    status, answer = answer_of(h.bridge.call(again, body))
    assert (status, answer["status"]) == (200, "duplicate")
    assert len(entries_for(h, first["x-8x8-event-id"])) == 1
    case_item = next(i for i in h.table_items() if i["pk"] == f"CASE#{case_id}" and i["sk"] == "CASE")
    assert case_item["version"] == version_after_first["version"]  # the state was not applied twice
    assert [p["eventId"] for p in h.faults.published].count(first["x-8x8-event-id"]) == 1
    assert h.case(case_id)["state"] == "with_agent"


def test_two_identical_deliveries_at_once_have_one_effect(harness: Harness, case: tuple[str, str]) -> None:
    """Two 'containers' (two copies of the handler module) get the same event at the same moment. One effect;
    a 'duplicate' answer is only ever given once the effect is durable (else 8x8 would stop retrying early)."""
    h, (case_id, conv) = harness, case
    containers = [load_function("webhook_intake", "-a"), load_function("webhook_intake", "-b")]
    for round_no in range(8):
        body = webhook_body("TEXT", conv, now_ms() + round_no, **{**EVENT_EXTRAS["TEXT"], "message": f"m{round_no}"})
        headers = signed_headers(h.emulator, body)
        event_id = headers["x-8x8-event-id"]
        barrier = threading.Barrier(2)
        results: list[tuple[int, str, int]] = []
        lock = threading.Lock()

        def deliver(
            app: Any,
            headers: dict[str, str] = headers,
            body: bytes = body,
            eid: str = event_id,
            barrier: threading.Barrier = barrier,
            lock: threading.Lock = lock,
            results: list[tuple[int, str, int]] = results,
        ) -> None:
            barrier.wait()
            status, answer = answer_of(app.lambda_handler(webhook_event(headers, body), LambdaContext()))
            durable = len(entries_for(h, eid))
            with lock:
                results.append((status, answer.get("status", ""), durable))

        threads = [threading.Thread(target=deliver, args=(app,)) for app in containers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert all(status == 200 for status, _, _ in results), results
        assert sorted(kind for _, kind, _ in results) in (["accepted", "duplicate"], ["accepted", "accepted"]) or (
            [kind for _, kind, _ in results].count("accepted") == 1
        ), results
        assert [kind for _, kind, _ in results].count("accepted") == 1, results
        for _, kind, durable in results:
            if kind == "duplicate":
                assert durable == 1, "answered 'duplicate' before the effect was durable"
        assert len(entries_for(h, event_id)) == 1
    assert len([i for i in h.timeline(case_id) if i["type"] == "AgentMessage"]) == 8


@pytest.mark.parametrize(
    ("offset_s", "tolerance_s", "expected"),
    [(-301, 300, 401), (301, 300, 401), (-200, 300, 200), (-61, 60, 401), (-30, 60, 200)],
)
def test_transmission_time_window(
    harness: Harness,
    case: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    offset_s: int,
    tolerance_s: int,
    expected: int,
) -> None:
    h, (_, conv) = harness, case
    from casebridge.services import get_services

    get_services().verifier.tolerance_ms = tolerance_s * 1000  # WEBHOOK_TOLERANCE_SECONDS
    body = webhook_body("QUEUED", conv, now_ms(), **EVENT_EXTRAS["QUEUED"])
    headers = signed_headers(h.emulator, body, tt=now_ms() + offset_s * 1000)
    status, _ = answer_of(h.bridge.call(headers, body))
    assert status == expected
    assert len(receipts(h)) == (1 if expected == 200 else 0)


def test_tolerance_comes_from_settings(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    from casebridge import services, settings

    monkeypatch.setenv("WEBHOOK_TOLERANCE_SECONDS", "42")
    settings.get_settings.cache_clear()
    services.set_services(None)
    assert services.get_services().verifier.tolerance_ms == 42_000


def _tamper(field: str, headers: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
    headers = dict(headers)
    if field == "body":
        flipped = bytearray(body)
        flipped[len(flipped) // 2] ^= 0x01
        return headers, bytes(flipped)
    if field == "body-trailing-space":
        return headers, body + b" "
    if field == "retry":
        headers["x-8x8-retry"] = str(int(headers["x-8x8-retry"]) + 1)
    elif field == "tt":
        headers["x-8x8-transmission-time"] = str(int(headers["x-8x8-transmission-time"]) + 1)
    elif field == "event-id":
        headers["x-8x8-event-id"] = headers["x-8x8-event-id"] + "x"
    elif field == "tenant":
        headers["x-8x8-tenant-id"] = "t2"
    elif field == "customer-id":
        headers["x-8x8-customer-id"] = "c2"
    elif field == "signature-byte":
        sig = headers["x-8x8-signature"]
        headers["x-8x8-signature"] = sig[:-3] + ("A" if sig[-3] != "A" else "B") + sig[-2:]
    return headers, body


TAMPERED = ["body", "body-trailing-space", "retry", "tt", "event-id", "tenant", "customer-id", "signature-byte"]


def test_tampering_with_a_signed_field_is_401_and_writes_nothing(harness: Harness, case: tuple[str, str]) -> None:
    h, (_, conv) = harness, case
    body = webhook_body("AGENT_JOINED", conv, now_ms(), **EVENT_EXTRAS["AGENT_JOINED"])
    before = h.table_items()
    for field in TAMPERED:
        headers, tampered_body = _tamper(field, signed_headers(h.emulator, body), body)
        status, answer = answer_of(h.bridge.call(headers, tampered_body))
        assert status == 401, (field, answer)
        assert h.table_items() == before, field
        assert h.faults.published == [], field
    # The untampered delivery still verifies (the test would pass vacuously otherwise).
    status, _ = answer_of(h.bridge.call(signed_headers(h.emulator, body), body))
    assert status == 200


def test_a_tenant_signed_for_another_tenant_is_refused(harness: Harness, case: tuple[str, str]) -> None:
    h, (_, conv) = harness, case
    body = webhook_body("QUEUED", conv, now_ms(), **EVENT_EXTRAS["QUEUED"])
    headers = signed_headers(h.emulator, body, tenant_id="other-tenant")
    status, _ = answer_of(h.bridge.call(headers, body))
    assert status == 401
    assert receipts(h) == []


HOSTILE_HEADERS: dict[str, Any] = {
    "alg-HS256": {"b64": False, "crit": ["b64"], "kid": "K", "alg": "HS256"},
    "alg-none": {"b64": False, "crit": ["b64"], "kid": "K", "alg": "none"},
    "alg-RS512": {"b64": False, "crit": ["b64"], "kid": "K", "alg": "RS512"},
    "alg-missing": {"b64": False, "crit": ["b64"], "kid": "K"},
    "crit-missing": {"b64": False, "kid": "K", "alg": "RS256"},
    "crit-extra": {"b64": False, "crit": ["b64", "exp"], "kid": "K", "alg": "RS256"},
    "crit-empty": {"b64": False, "crit": [], "kid": "K", "alg": "RS256"},
    "b64-true": {"b64": True, "crit": ["b64"], "kid": "K", "alg": "RS256"},
    "b64-missing": {"crit": ["b64"], "kid": "K", "alg": "RS256"},
    "b64-string": {"b64": "false", "crit": ["b64"], "kid": "K", "alg": "RS256"},
    "extra-jku": {"b64": False, "crit": ["b64"], "kid": "K", "alg": "RS256", "jku": "https://evil.example/jwks"},
    "extra-jwk": {"b64": False, "crit": ["b64"], "kid": "K", "alg": "RS256", "jwk": {"kty": "RSA"}},
    "kid-traversal": {"b64": False, "crit": ["b64"], "kid": "../../../oauth/v2/token", "alg": "RS256"},
    "kid-slash": {"b64": False, "crit": ["b64"], "kid": "a/b", "alg": "RS256"},
    "kid-encoded": {"b64": False, "crit": ["b64"], "kid": "%2e%2e%2f", "alg": "RS256"},
    "kid-long": {"b64": False, "crit": ["b64"], "kid": "k" * 500, "alg": "RS256"},
    "kid-number": {"b64": False, "crit": ["b64"], "kid": 7, "alg": "RS256"},
    "kid-missing": {"b64": False, "crit": ["b64"], "alg": "RS256"},
    "kid-newline": {"b64": False, "crit": ["b64"], "kid": "a\nb", "alg": "RS256"},
}


def test_protected_header_is_checked_before_any_key_fetch(harness: Harness, case: tuple[str, str]) -> None:
    """Fresh container (no key cached): every bad header is refused with 401 and no key is fetched."""
    h, (_, conv) = harness, case
    body = webhook_body("QUEUED", conv, now_ms(), **EVENT_EXTRAS["QUEUED"])
    jwk_before = h.engine.request_counts().get("jwk", 0)
    for name, template in sorted(HOSTILE_HEADERS.items()):
        header = dict(template)
        if header.get("kid") == "K":
            header["kid"] = h.emulator.engine.keys.active.kid  # a real kid: only the header itself is wrong
        status, _ = answer_of(h.bridge.call(signed_headers(h.emulator, body, protected=header), body))
        assert status == 401, name
        assert h.engine.request_counts().get("jwk", 0) == jwk_before, f"a key was fetched for {name}"
    assert receipts(h) == []
    # The same body, properly signed, is accepted: the refusals above were about the header alone.
    assert answer_of(h.bridge.call(signed_headers(h.emulator, body), body))[0] == 200


MALFORMED = ["", "abc", "a.b.c", "..", "e30..", "e30..!!", "x" * 5000, "e30.e30.e30", "e30..e30..e30"]


def test_malformed_signature_is_401_without_key_fetch(harness: Harness, case: tuple[str, str]) -> None:
    h, (_, conv) = harness, case
    body = webhook_body("QUEUED", conv, now_ms(), **EVENT_EXTRAS["QUEUED"])
    jwk_before = h.engine.request_counts().get("jwk", 0)
    for signature in MALFORMED:
        headers = signed_headers(h.emulator, body)
        headers["x-8x8-signature"] = signature
        status, _ = answer_of(h.bridge.call(headers, body))
        assert status == 401, signature
    assert h.engine.request_counts().get("jwk", 0) == jwk_before
    assert receipts(h) == []


def test_unknown_kid_is_401(harness: Harness, case: tuple[str, str]) -> None:
    h, (_, conv) = harness, case
    body = webhook_body("QUEUED", conv, now_ms(), **EVENT_EXTRAS["QUEUED"])
    header = {"b64": False, "crit": ["b64"], "kid": b64url(b"not-a-key-of-8x8"), "alg": "RS256"}
    jwk_before = h.engine.request_counts().get("jwk", 0)
    status, _ = answer_of(h.bridge.call(signed_headers(h.emulator, body, protected=header), body))
    assert status == 401  # 8x8 answers 404 for the kid: a key 8x8 does not have is a bad signature
    assert h.engine.request_counts().get("jwk", 0) == jwk_before + 1


@pytest.mark.parametrize(
    "fault", [{"kind": "status", "status": 503}, {"kind": "status", "status": 500}, {"kind": "reset"}]
)
def test_key_endpoint_down_cached_key_verifies_unknown_key_is_5xx_never_401(
    harness: Harness, case: tuple[str, str], fault: dict[str, Any]
) -> None:
    h, (case_id, conv) = harness, case
    body = webhook_body("QUEUED", conv, now_ms(), **EVENT_EXTRAS["QUEUED"])
    assert answer_of(h.bridge.call(signed_headers(h.emulator, body), body))[0] == 200  # key now cached
    h.emulator.add_fault(op="jwk", **fault)
    body2 = webhook_body("AGENT_JOINED", conv, now_ms(), **EVENT_EXTRAS["AGENT_JOINED"])
    assert answer_of(h.bridge.call(signed_headers(h.emulator, body2), body2))[0] == 200  # cached key verifies
    h.engine.keys.rotate()  # 8x8 signs with a key this container has never seen, and its endpoint is down
    body3 = webhook_body("AGENT_LEFT", conv, now_ms(), **EVENT_EXTRAS["AGENT_LEFT"])
    headers3 = signed_headers(h.emulator, body3)
    status, answer = answer_of(h.bridge.call(headers3, body3))
    assert 500 <= status < 600, (status, answer)
    assert entries_for(h, headers3["x-8x8-event-id"]) == []
    h.emulator.clear_faults()
    time.sleep(FAILED_KID_TTL_S)  # 8x8 retries after a delay; the failure is remembered that long per kid
    retried = signed_headers(h.emulator, body3, event_id=headers3["x-8x8-event-id"], retry=1)
    assert answer_of(h.bridge.call(retried, body3))[0] == 200  # 8x8's retry succeeds once the endpoint is back
    assert h.case(case_id)["state"] == "agent_left"


def test_publish_failure_answers_non_2xx_and_the_retry_publishes_what_was_recorded(
    harness: Harness, case: tuple[str, str]
) -> None:
    """The event is recorded (timeline, state, receipt, the case's outbox mark) before it is published. The bus
    fails: 5xx, so 8x8 retries; the retry finds the receipt, publishes what the outbox holds, and only then
    answers `duplicate`. Published once, recorded once."""
    h, (case_id, conv) = harness, case
    body = webhook_body("AGENT_JOINED", conv, now_ms(), **EVENT_EXTRAS["AGENT_JOINED"])
    headers = signed_headers(h.emulator, body)
    h.faults.publish_failures = 1
    status, first = answer_of(h.bridge.call(headers, body))
    assert status >= 500, first
    assert len(entries_for(h, headers["x-8x8-event-id"])) == 1 and len(receipts(h)) == 1
    assert h.faults.published == []
    retry = signed_headers(h.emulator, body, event_id=headers["x-8x8-event-id"], retry=1)
    status, answer = answer_of(h.bridge.call(retry, body))
    assert (status, answer["status"]) == (200, "duplicate")
    assert len(entries_for(h, headers["x-8x8-event-id"])) == 1
    assert [p["eventId"] for p in h.faults.published] == [headers["x-8x8-event-id"]]
    assert h.case(case_id)["state"] == "with_agent"
    assert len(h.faults.published) == 1, "nothing left on the outbox to publish again"


def test_agent_left_before_agent_joined_and_late_queued_never_move_state_back(
    harness: Harness, case: tuple[str, str]
) -> None:
    h, (case_id, conv) = harness, case
    t0 = now_ms() - 10_000
    events = {
        "QUEUED": webhook_body("QUEUED", conv, t0, **EVENT_EXTRAS["QUEUED"]),
        "AGENT_JOINED": webhook_body("AGENT_JOINED", conv, t0 + 1000, **EVENT_EXTRAS["AGENT_JOINED"]),
        "AGENT_LEFT": webhook_body("AGENT_LEFT", conv, t0 + 2000, **EVENT_EXTRAS["AGENT_LEFT"]),
    }
    states = []
    for name in ("AGENT_LEFT", "AGENT_JOINED", "QUEUED"):  # arrival order: the reverse of what happened
        assert answer_of(h.bridge.call(signed_headers(h.emulator, events[name]), events[name]))[0] == 200
        view = h.case(case_id)
        states.append((view["state"], view["stateChangedAt"]))
    assert states == [("agent_left", t0 + 2000)] * 3
    assert len(from_8x8(h, case_id)) == 3  # every event is on the timeline, none moved the state back


STATE_EVENTS = ["QUEUED", "AGENT_JOINED", "AGENT_LEFT", "TRANSFER", "TEXT"]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(STATE_EVENTS), min_size=1, max_size=6), st.randoms(use_true_random=False))
def test_any_arrival_order_never_moves_state_backwards(harness: Harness, kinds: list[str], rnd: Any) -> None:
    h = harness
    case_id, conv = f"case-{uuid.uuid4().hex[:8]}", f"conv-{uuid.uuid4().hex[:8]}"
    map_case(case_id, conv)
    t0 = now_ms() - 60_000
    timed = [(t0 + i * 1000, kind) for i, kind in enumerate(kinds)]
    arrival = list(timed)
    rnd.shuffle(arrival)
    last_at = 0
    for ts, kind in arrival:
        body = webhook_body(kind, conv, ts, **EVENT_EXTRAS[kind])
        assert answer_of(h.bridge.call(signed_headers(h.emulator, body), body))[0] == 200
        view = h.case(case_id)
        at = view["stateChangedAt"] or 0
        assert at >= last_at, "state moved backwards"
        last_at = at
    changing = [ts for ts, kind in timed if kind != "TEXT"]
    assert (h.case(case_id)["stateChangedAt"] or 0) == (max(changing) if changing else 0)
    assert len(from_8x8(h, case_id)) == len(kinds)


def from_8x8(h: Harness, case_id: str) -> list[dict[str, Any]]:
    """The case's timeline entries that are 8x8's events (the escalation adds its own, e.g. HandedBack)."""
    ours = {"ConversationOpened", "HandedBack", "CustomerIdle", "CustomerMessage", "MessageDelivered"}
    return [e for e in h.timeline(case_id) if e["type"] not in ours]
