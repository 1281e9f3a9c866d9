"""Case mapping: one 8x8 conversation per case, whatever the concurrency; a crash while opening heals."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import pytest

from casebridge import cases
from casebridge.services import get_services
from tests.guarantees.cb_guarantees_harness import Crash, Harness, both_apis
from tests.support.aws import AwsResources
from tests.support.events import sqs_event
from tests.support.lambdas import LambdaContext, load_function

pytestmark = both_apis

SLOW_CREATE_S = 0.3  # 8x8's create slowed down: the openers race while it runs


@pytest.fixture
def deployed_http_timeout(aws_resources: AwsResources, monkeypatch: pytest.MonkeyPatch) -> None:
    """The race tests' 8x8 is slow, never silent: they run with the connector's own 8x8 timeout (5 s), not the
    harness's short one (there so that hang faults play out fast). With 0.5 s, its value once, a create slowed by
    0.3 s on a loaded machine timed out: the product then rightly deferred the message (ambiguous create, looked up
    on retry), and the test, about the race and not about timeouts, failed. Taken before `harness`, which reads the
    settings."""
    monkeypatch.delenv("HTTP_TIMEOUT_SECONDS")


def sqs_batch(case_id: str, text: str) -> dict[str, Any]:
    """An SQS event of one message, as the queue hands a first message to the sender."""
    body = {"caseId": case_id, "messageId": str(uuid.uuid4()), "text": text, "authorType": "user", "acceptedAt": 1}
    message = {
        "MessageId": str(uuid.uuid4()),
        "ReceiptHandle": f"rh-{uuid.uuid4()}",
        "Body": json.dumps(body),
        "Attributes": {"MessageGroupId": case_id},
    }
    return sqs_event([message], "arn:aws:sqs:us-east-1:123456789012:casebridge-outbound.fifo")


def test_32_concurrent_first_messages_open_exactly_one_conversation(
    deployed_http_timeout: None, harness: Harness
) -> None:
    h = harness
    assert get_services().settings.http_timeout_seconds > 10 * SLOW_CREATE_S
    h.emulator.add_fault("latency", "create_conversation", count=1, seconds=SLOW_CREATE_S)  # widens the race
    outbound = load_function("outbound_sender")
    texts = [f"first-{i:02d}" for i in range(32)]
    barrier = threading.Barrier(32)
    outcomes: dict[str, str] = {}
    lock = threading.Lock()

    def deliver(text: str) -> None:
        barrier.wait()
        answer = outbound.lambda_handler(sqs_batch("race", text), LambdaContext())
        with lock:
            outcomes[text] = "failed" if answer["batchItemFailures"] else "sent"

    threads = [threading.Thread(target=deliver, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(100)  # correctness, not speed: 32 writers of one case take turns on its timeline (slow on a busy CI)
    assert not [t for t in threads if t.is_alive()], "a delivery never finished"
    assert len(outcomes) == 32
    # A message whose opener waited past its turn (a busy machine) goes back to its queue: SQS delivers it again.
    for text in sorted(t for t, outcome in outcomes.items() if outcome == "failed"):
        again = outbound.lambda_handler(sqs_batch("race", text), LambdaContext())
        outcomes[text] = "failed again" if again["batchItemFailures"] else "sent"
    assert set(outcomes.values()) == {"sent"}, outcomes
    conversations = h.conversations_for_case("race")
    assert len(conversations) == 1
    assert h.case_conversation("race") == conversations[0]
    assert h.engine.request_counts()["create_conversation"] == 1
    sent = h.transcript_texts(conversations[0])
    assert sorted(sent) == texts  # every message once


def test_concurrent_open_calls_from_several_containers_agree(deployed_http_timeout: None, harness: Harness) -> None:
    h = harness
    assert get_services().settings.http_timeout_seconds > 10 * SLOW_CREATE_S
    h.emulator.add_fault("latency", "create_conversation", count=1, seconds=SLOW_CREATE_S)
    answers: list[dict[str, object]] = []
    barrier = threading.Barrier(6)

    def open_case(n: int) -> None:
        barrier.wait()
        answers.append(h.open_case("opened-together", copy=f"-c{n}"))

    threads = [threading.Thread(target=open_case, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(100)  # correctness, not speed (pytest's timeout still catches a hang)
    assert not [t for t in threads if t.is_alive()], "a delivery never finished"
    statuses = sorted(int(a["statusCode"]) for a in answers)  # type: ignore[call-overload]
    assert statuses == [200] * 5 + [201]
    ids = {json.loads(str(a["body"]))["conversationId"] for a in answers}
    assert len(ids) == 1 and len(h.conversations_for_case("opened-together")) == 1


def test_crash_between_creating_and_recording_the_conversation_heals(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The container dies after 8x8 created the conversation, before the case recorded it. While the opening
    lease runs, nobody opens a second one (409, retry); once it expires, the next opener sees the claim that was
    never released, looks the case's conversation up in 8x8 (by caseId) and adopts it: one conversation, no
    orphan (a second conversation used to be created here, the first left orphaned)."""
    h = harness
    monkeypatch.setattr(cases, "OPENING_LEASE_MS", 1_500)
    monkeypatch.setattr(cases, "WAIT_FOR_PEER_S", 0.2)
    store = get_services().store
    original = store.record_conversation
    crashed: list[str] = []

    def record_or_crash(case_id: str, conversation_id: str, channel_id: str, **kwargs: Any) -> None:
        if not crashed:
            crashed.append(conversation_id)
            raise Crash("container died before recording the conversation")
        original(case_id, conversation_id, channel_id, **kwargs)

    monkeypatch.setattr(store, "record_conversation", record_or_crash)
    h.post_message("crashy", "hello after a crash", client_id="m1")
    stats = h.drain(timeout=30)
    assert stats.crashes == 1
    answer = h.get_case("crashy")
    assert answer is not None and answer["conversationId"] == crashed[0], "the created conversation is adopted"
    assert h.transcript_texts(crashed[0]) == ["hello after a crash"]
    assert h.conversations_for_case("crashy") == [crashed[0]]
    assert h.engine.request_counts()["create_conversation"] == 1


def test_during_the_opening_lease_a_second_opener_waits_instead_of_creating(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    monkeypatch.setattr(cases, "WAIT_FOR_PEER_S", 0.3)
    assert get_services().store.claim_opening("leased", cases.OPENING_LEASE_MS)  # a peer holds the lease
    answer = h.open_case("leased")
    assert answer["statusCode"] == 409
    assert (answer.get("multiValueHeaders") or {}).get("Retry-After") == ["1"] or (answer.get("headers") or {}).get(
        "Retry-After"
    ) == "1"
    assert h.conversations_for_case("leased") == []
