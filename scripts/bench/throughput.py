"""Figure 4: webhook verification throughput on one core, and the intake's own overhead per event with
every AWS call stubbed (in-memory fakes answer at once: only our code, powertools and msgspec are timed)."""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass
from typing import Any

from casebridge import services as svc
from casebridge.contact_center.webhook_signature import JwkCache, WebhookVerifier
from casebridge.settings import load_settings
from scripts.bench import harness as h
from tests.support.events import EVENT_EXTRAS, webhook_body, webhook_event
from tests.support.lambdas import LambdaContext, load_function

CONVERSATION = "conv-throughput"
CASE = "case-throughput"


@dataclass
class Throughput:
    verifications_per_s: float
    verify_us: float
    intake_ms_p50: float
    intake_ms_p99: float
    events: int

    @property
    def verify_met(self) -> bool:
        return self.verifications_per_s >= 5000

    @property
    def intake_met(self) -> bool:
        return self.intake_ms_p50 <= 1.0


class FakeDynamoDB:
    """Answers the intake's reads with a known case and no receipt, and accepts every write."""

    def __init__(self) -> None:
        self.case = {
            "pk": {"S": f"CASE#{CASE}"},
            "sk": {"S": "CASE"},
            "caseId": {"S": CASE},
            "conversationId": {"S": CONVERSATION},
            "channelId": {"S": h.CHANNEL},
            "state": {"S": "with_agent"},
            "stateAt": {"N": "1"},
            "agentId": {"S": "a-1"},
            "agentName": {"S": "Ada"},
            "version": {"N": "7"},
        }
        self.mapping = {"pk": {"S": f"CONVERSATION#{CONVERSATION}"}, "sk": {"S": "CONVERSATION"}, "caseId": {"S": CASE}}

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        found = []
        for table, request in RequestItems.items():
            for key in request["Keys"]:
                sk = key["sk"]["S"]
                if sk == "CASE":
                    found.append(self.case)
                elif sk == "CONVERSATION":
                    found.append(self.mapping)
            return {"Responses": {table: found}, "UnprocessedKeys": {}}
        return {"Responses": {}}

    def get_item(self, **_: Any) -> dict[str, Any]:
        return {"Item": self.case}

    def transact_write_items(self, **_: Any) -> dict[str, Any]:
        return {}


class FakeEvents:
    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "e"} for _ in Entries]}


def run(seconds: float = 1.0, events: int = 2000) -> Throughput:
    signer = h.new_signer()
    jwk = signer.public_jwk
    types = ("QUEUED", "AGENT_JOINED", "TEXT", "TRANSFER", "AGENT_LEFT")
    signed = []
    for n in range(50):  # signing is the slow part; 50 distinct deliveries are replayed (the fakes never dedupe)
        body = webhook_body(types[n % len(types)], CONVERSATION, **EVENT_EXTRAS[types[n % len(types)]])
        headers = h.webhook_headers(signer, body, f"evt-{n:04d}")
        signed.append((body, headers))

    # Verification alone, one thread (one core), keys cached as in a warm container.
    verifier = WebhookVerifier(h.TENANT, JwkCache(lambda kid: jwk))
    lowered = [({k.lower(): v for k, v in hd.items()}, body) for body, hd in signed]
    verifier.verify(*lowered[0])
    done = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for headers, body in lowered:
            verifier.verify(headers, body)
        done += len(lowered)
    elapsed = time.perf_counter() - started
    rate = done / elapsed

    # The whole intake handler, AWS stubbed.
    fn = load_function("webhook_intake")
    h.silence_function_logs()
    services = svc.build_services(load_settings())
    services.store.client = FakeDynamoDB()  # type: ignore[assignment]
    services.publisher.client = FakeEvents()  # type: ignore[assignment]
    services.verifier = WebhookVerifier(h.TENANT, JwkCache(lambda kid: jwk))
    svc.set_services(services)
    context = LambdaContext()
    api_events = [webhook_event(headers, body) for body, headers in signed]
    timings: list[float] = []
    try:
        with contextlib.redirect_stdout(h.NULL):
            for n in range(events + 100):
                event = api_events[n % len(api_events)]
                t0 = time.perf_counter()
                answer = fn.lambda_handler(event, context)
                t1 = time.perf_counter()
                assert answer["statusCode"] == 200, answer
                if n >= 100:  # the first ones warm the caches (conversation map, request decoders, key)
                    timings.append((t1 - t0) * 1000)
    finally:
        h.cold_container()
    timings.sort()
    return Throughput(
        verifications_per_s=rate,
        verify_us=1e6 / rate,
        intake_ms_p50=statistics.median(timings),
        intake_ms_p99=timings[int(len(timings) * 0.99) - 1],
        events=len(timings),
    )
