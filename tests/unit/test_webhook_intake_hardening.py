"""The public webhook gives nothing away and keeps no more than it needs: one 401 body for every signature failure,
8x8's unknown events always 2xx and kept, receipts without personal data, key-endpoint failures remembered as long
as the guarantees say. The real webhook handler on moto, on both 8x8 webhook dialects where they apply."""
# ruff: noqa: F811 - the fixtures `api` and `metrics_seen` come from test_webhook_intake_defenses

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import responses

from casebridge.contact_center.webhook_signature import JwkCache
from casebridge.errors import SigningKeyUnavailable
from tests.support.fakes import StubJwkFetcher
from tests.support.samples import CONVERSATION_ID, invoke, sample_webhook_event
from tests.support.signing import WebhookSigner
from tests.unit.test_webhook_intake_defenses import (  # noqa: F401 - fixtures
    api,
    body_of,
    items,
    made_up_kid,
    metrics_seen,
    open_case,
    queued,
    receipts,
)

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = "chat-api-v2/webhook_queued.json"


def deliver(functions: SimpleNamespace, signer: WebhookSigner, body: bytes, **sign: Any) -> Any:
    return invoke(functions.webhook, sample_webhook_event("chat-api-v2/webhook_queued.json", signer, body=body, **sign))


# ---- one answer for every signature failure -----------------------------------------------------------------
def test_every_signature_failure_gets_the_same_401_body(
    functions: SimpleNamespace, api: str, webhook_signer: WebhookSigner, other_rsa_private_key: Any
) -> None:
    """The 401 used to say whether the tenant guess was right, whether the kid exists, what was wrong: an oracle
    for someone without a signature. Now every failure reads the same (the reason is in the log only)."""
    body = queued(api)
    failures = {
        "wrong tenant": deliver(functions, webhook_signer, body, tenant_id="another-tenant"),
        "old transmission time": deliver(functions, webhook_signer, body, tt=int(time.time() * 1000) - 3_600_000),
        "unknown kid": deliver(functions, webhook_signer, body, protected=made_up_kid("no-such-kid")),
        "bad header": deliver(functions, webhook_signer, body, protected={"alg": "none"}),
        "wrong key": deliver(functions, webhook_signer, body, key=other_rsa_private_key),
        "body changed": invoke(
            functions.webhook,
            {
                **sample_webhook_event("chat-api-v2/webhook_queued.json", webhook_signer, body=body),
                "body": body.decode() + " ",
            },
        ),
    }
    statuses = {name: answer.status for name, answer in failures.items()}
    assert set(statuses.values()) == {401}, statuses
    bodies = {json.dumps(answer.body, sort_keys=True) for answer in failures.values()}
    assert len(bodies) == 1, bodies


# ---- key-endpoint failures: remembered as long as the guarantees say ---------------------------------------
def test_key_endpoint_failures_are_remembered_as_long_as_the_guarantees_state(webhook_signer: WebhookSigner) -> None:
    """docs/guarantees.md promised 5 s; the code remembered 2 s. One value, the same in both."""
    from casebridge.contact_center.webhook_signature import FAILED_KID_TTL_S, http_jwk_fetcher  # noqa: PLC0415

    guarantees = (ROOT / "docs" / "guarantees.md").read_text()
    assert f"remembered {FAILED_KID_TTL_S:g} s per kid" in guarantees
    now = [0.0]
    url = "https://api.8x8.test/chat-gateway/v1/jwk/{kid}/public"
    with responses.RequestsMock() as rsps:
        failing = rsps.get(url.format(kid="kid-a"), status=503)
        cache = JwkCache(http_jwk_fetcher(url), clock=lambda: now[0])
        with pytest.raises(SigningKeyUnavailable):
            cache.get("kid-a")
        now[0] = 4.9
        with pytest.raises(SigningKeyUnavailable) as remembered:
            cache.get("kid-a")
        assert failing.call_count == 1
        assert remembered.value.retry_after is not None and remembered.value.retry_after <= 1
        now[0] = 5.0
        with pytest.raises(SigningKeyUnavailable):
            cache.get("kid-a")
        assert failing.call_count == 2


# ---- unknown Gateway events: 2xx, kept, counted, whatever their envelope -----------------------------------
@pytest.mark.parametrize("api", ["chat-gateway-v1", "chat-api-v2"], indirect=True)
def test_unknown_events_with_an_odd_envelope_are_200_kept_and_counted(
    functions: SimpleNamespace,
    api: str,
    webhook_signer: WebhookSigner,
    metrics_seen: list[str],
) -> None:
    """8x8's lists of event types are extensible: an unknown type is answered 2xx and kept, also without a
    conversationId, with a timestamp that is not an integer, or with a `data` that is not an object."""
    shapes = [
        {"eventType": "SOMETHING_NEW", "timestamp": int(time.time() * 1000)},
        {"eventType": "SOMETHING_NEW", "conversationId": CONVERSATION_ID, "timestamp": "yesterday"},
        {"eventType": "SOMETHING_NEW", "conversationId": CONVERSATION_ID, "timestamp": 1, "data": ["a", "list"]},
        {"eventType": "SOMETHING_NEW", "conversationId": {"nested": True}, "data": "text"},
    ]
    for shape in shapes:
        event_id = f"evt-{uuid.uuid4()}"
        answer = deliver(functions, webhook_signer, json.dumps(shape).encode(), event_id=event_id)
        assert (answer.status, answer.body) == (200, {"status": "kept"}), (shape, answer.raw)
        [receipt] = [r for r in receipts() if r["pk"]["S"].endswith(f"#{event_id}")]
        assert receipt["outcome"]["S"] == "unhandled"
    assert metrics_seen.count("WebhookEventsUnhandled") == len(shapes)


# ---- receipts keep a hash, not the customer's personal data -------------------------------------------------
@pytest.mark.parametrize("api", ["chat-gateway-v1"], indirect=True)  # CONVERSATION_UPDATE is the Gateway's
def test_conversation_update_receipts_keep_no_personal_data(
    functions: SimpleNamespace, api: str, webhook_signer: WebhookSigner
) -> None:
    """CONVERSATION_UPDATE carries the customer's name, email, phone and IP (GATEWAY.md §3.3). Its receipt keeps
    what deduplication needs (the body's hash), never those, and a retry is still a duplicate."""
    open_case(functions)
    personal = ["John Doe", "john@example.com", "+1234567890", "192.168.1.1", "Acme Inc."]
    data = {
        "state": "active",
        "assignment": {"type": "agent", "id": "agent-abc-123"},
        "user": {
            "name": personal[0],
            "userId": "user-456",
            "email": personal[1],
            "phone": personal[2],
            "company": personal[4],
            "ipaddress": personal[3],
            "additionalProperties": [{"key": "department", "value": "support"}],
        },
        "msisdn": personal[2],
        "channel": "WebChat",
    }
    body = body_of(api, "CONVERSATION_UPDATE", **data)
    event_id = f"evt-{uuid.uuid4()}"
    answer = deliver(functions, webhook_signer, body, event_id=event_id)
    assert answer.status == 200, answer.raw
    kept = json.dumps(items())
    assert not [value for value in personal if value in kept], "personal data at rest"
    [receipt] = [r for r in receipts() if r["pk"]["S"].endswith(f"#{event_id}")]
    assert len(receipt["bodySha256"]["S"]) == 64
    again = deliver(functions, webhook_signer, body, event_id=event_id, retry=1)
    assert (again.status, again.body) == (200, {"status": "duplicate"})


# ---- nobody locked out: a flood of made-up kids cannot keep 8x8's keys from being used ---------------------
EIGHT_BY_EIGHT = "198.51.100.1"  # where 8x8's deliveries come from in this test


def from_source(event: dict[str, Any], source: str) -> dict[str, Any]:
    event["requestContext"]["identity"]["sourceIp"] = source
    return event


def container(jwk_fetcher: StubJwkFetcher) -> None:
    """A new container: its own key cache (empty), the same table."""
    from dataclasses import replace  # noqa: PLC0415

    from casebridge.contact_center.webhook_signature import WebhookVerifier  # noqa: PLC0415
    from casebridge.services import get_services, set_services  # noqa: PLC0415

    services = get_services()
    keys = JwkCache(jwk_fetcher, store=services.store)
    set_services(replace(services, verifier=WebhookVerifier(services.settings.tenant_id, keys, tolerance_s=300)))


def test_a_genuine_delivery_is_verified_during_a_flood_of_unsigned_requests_with_made_up_kids(
    functions: SimpleNamespace,
    api: str,
    webhook_signer: WebhookSigner,
    other_rsa_private_key: Any,
    jwk_fetcher: StubJwkFetcher,
) -> None:
    """Ten requests with made-up kids used to spend a container's whole key-fetch budget: a genuine delivery to a
    container without the key cached then got 503, its key never looked up, and so did a rotated key. Now keys
    that verified are in the table for every container, one source cannot spend the budget, and sources that
    delivered verified events have fetches of their own: genuine deliveries verify (fast) throughout the flood."""
    from casebridge.contact_center.webhook_signature import FETCH_BUDGET  # noqa: PLC0415

    open_case(functions)
    container(jwk_fetcher)
    first = invoke(
        functions.webhook, from_source(sample_webhook_event(SAMPLE, webhook_signer, body=queued(api)), EIGHT_BY_EIGHT)
    )
    assert first.status == 200, first.raw

    def flood(count: int) -> list[int]:
        statuses = []
        for n in range(count):
            event = sample_webhook_event(
                SAMPLE, webhook_signer, body=queued(api), protected=made_up_kid(f"fake-{uuid.uuid4().hex}")
            )
            statuses.append(invoke(functions.webhook, from_source(event, f"203.0.113.{n % 50}")).status)
        return statuses

    def genuine(signer: WebhookSigner) -> float:
        started = time.monotonic()
        answer = invoke(
            functions.webhook, from_source(sample_webhook_event(SAMPLE, signer, body=queued(api)), EIGHT_BY_EIGHT)
        )
        assert answer.status == 200, answer.raw
        return time.monotonic() - started

    # A new container (nothing cached) during the flood: the key that verified before comes from the table.
    container(jwk_fetcher)
    fetches_before = len(jwk_fetcher.calls)
    timings = []
    for _ in range(5):
        assert set(flood(30)) <= {401, 503}
        timings.append(genuine(webhook_signer))
    made_up_fetches = len(jwk_fetcher.calls) - fetches_before
    assert made_up_fetches <= FETCH_BUDGET, "unsigned traffic spends a bounded number of calls to 8x8"
    assert webhook_signer.kid not in jwk_fetcher.calls[fetches_before:], "the genuine kid never needed 8x8"
    # 8x8 rotates its key in the middle of the flood: its new kid is fetched on a budget the flood cannot spend.
    rotated = WebhookSigner(other_rsa_private_key, kid="test-kid-2")
    jwk_fetcher.keys[rotated.kid] = rotated.public_jwk
    assert set(flood(30)) <= {401, 503}
    timings.append(genuine(rotated))
    assert max(timings) < 2.0, timings


def test_a_new_container_fetches_a_rotated_kid_for_8x8_whose_address_another_container_verified(
    functions: SimpleNamespace,
    api: str,
    webhook_signer: WebhookSigner,
    other_rsa_private_key: Any,
    jwk_fetcher: StubJwkFetcher,
) -> None:
    """The trusted budget is for addresses that delivered a verified event; a brand-new container learns them from
    the table, so a flood from many addresses that spent its own budget first cannot starve 8x8's new kid."""
    open_case(functions)
    container(jwk_fetcher)
    first = invoke(
        functions.webhook, from_source(sample_webhook_event(SAMPLE, webhook_signer, body=queued(api)), EIGHT_BY_EIGHT)
    )
    assert first.status == 200, first.raw
    container(jwk_fetcher)  # a new container: it has seen nothing verified itself
    for n in range(40):  # the flood comes first, from 40 addresses: the container's own budget is gone
        event = sample_webhook_event(SAMPLE, webhook_signer, body=queued(api), protected=made_up_kid(f"fake-{n}"))
        assert invoke(functions.webhook, from_source(event, f"203.0.113.{n}")).status in (401, 503)
    rotated = WebhookSigner(other_rsa_private_key, kid="test-kid-2")
    jwk_fetcher.keys[rotated.kid] = rotated.public_jwk
    answer = invoke(
        functions.webhook, from_source(sample_webhook_event(SAMPLE, rotated, body=queued(api)), EIGHT_BY_EIGHT)
    )
    assert answer.status == 200, answer.raw
    assert rotated.kid in jwk_fetcher.calls
