"""The simulation is not a check that cannot fail: known defects, put back one at a time by patching the code, are
each found within a bounded run, and the same run without the patch does not report them."""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from tests.simulation.runner import RunSummary
from tests.simulation.simulation import Result, Simulation, run_seed
from tests.support.signing import TENANT_ID

SEEDS = 200  # each defect must be found within this many seeds
# The bounded run behind these tests takes 15-30 s alone, minutes on a busy machine.
pytestmark = pytest.mark.timeout(900)


@dataclass(frozen=True)
class Defect:
    name: str
    finds: Callable[[str, Result], bool]  # the violation that reports it, in its history
    api: str | None = None  # the 8x8 API whose histories show it (None: either)


def _first_found(defect: Defect) -> Result | None:
    for seed in range(SEEDS):
        result = run_seed(seed, api=defect.api)
        if any(defect.finds(v, result) for v in result.violations):
            return result
    return None


def _reported_without_the_patch(defect: Defect, bounded_run: RunSummary) -> list[str]:
    return [v for r in bounded_run.failures for v in r.violations if defect.finds(v, r)]


def _found(defect: Defect, bounded_run: RunSummary) -> None:
    already = _reported_without_the_patch(defect, bounded_run)
    assert not already, f"the run reports it without the patch (the fix has not landed): {already[0]}"
    found = _first_found(defect)
    assert found is not None, f"{defect.name}: not found in {SEEDS} seeds"


# ---- the defects, each as a patch of today's code ----------------------------------------------------------------


@pytest.fixture
def ambiguous_create_treated_as_final(monkeypatch: pytest.MonkeyPatch) -> Defect:
    """A create whose outcome is unknown (504, timeout, reset) is reported as failed-for-sure."""
    from casebridge.contact_center.client_base import ClientBase  # noqa: PLC0415
    from casebridge.errors import ContactCenterError  # noqa: PLC0415

    original = ClientBase._open_conversation

    def final(self: ClientBase, body: dict[str, Any]) -> str:
        try:
            return original(self, body)
        except ContactCenterError as error:
            error.ambiguous = False
            raise

    monkeypatch.setattr(ClientBase, "_open_conversation", final)
    return Defect("an ambiguous create treated as final", lambda v, r: v.startswith("[1 one conversation]"))


@pytest.fixture
def dead_letter_deduplication_id_reused(monkeypatch: pytest.MonkeyPatch) -> Defect:
    """Every dead-lettering of a message uses the same deduplication id."""
    from casebridge.outbound_queue import OutboundQueue  # noqa: PLC0415

    original = OutboundQueue.dead_letter

    def same_id(self: OutboundQueue, body: str, group_id: str, deduplication_id: str, reason: str) -> None:
        message_id = json.loads(body).get("messageId", deduplication_id)
        original(self, body, group_id, f"dlq-{message_id}", reason)

    monkeypatch.setattr(OutboundQueue, "dead_letter", same_id)
    return Defect("dead-letter deduplication id reused", lambda v, r: "not in the dead-letter queue" in v)


@pytest.fixture
def time_ordered_cursor(monkeypatch: pytest.MonkeyPatch) -> Defect:
    """The timeline is paged by the time each entry was received (a Lambda's clock), not by commit order."""
    from casebridge.store.cases import CaseItems  # noqa: PLC0415
    from casebridge.store.codec import decode_cursor, to_item  # noqa: PLC0415
    from casebridge.store.records import TimelineEntry  # noqa: PLC0415

    def by_time(self: CaseItems, case_id: str, after: str | None, limit: int) -> tuple[list[TimelineEntry], str | None]:
        answer = self.client.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=to_item({":pk": f"CASE#{case_id}", ":prefix": "EVENT#"}),
            ConsistentRead=True,
        )
        timed = sorted((replace(TimelineEntry.from_item(i), sequence=0) for i in answer["Items"]), key=_key)
        start = decode_cursor(after) if after else ""
        page = [e for e in timed if e.sort_key > start][:limit]
        return page, (base64.urlsafe_b64encode(page[-1].sort_key.encode()).decode().rstrip("=") if page else after)

    monkeypatch.setattr(CaseItems, "list_timeline", by_time)
    return Defect("time-ordered cursor", lambda v, r: v.startswith("[5 cursor]") and "never got" in v)


def _key(entry: Any) -> str:
    return str(entry.sort_key)


@pytest.fixture
def agent_message_classed_as_echo(monkeypatch: pytest.MonkeyPatch) -> Defect:
    """The intake takes an agent's message for the echo of the connector's own post."""
    from casebridge import services  # noqa: PLC0415
    from casebridge.events import ECHO_NOTE, ContactCenterEvent, EventKind  # noqa: PLC0415

    original = services.webhook_parser

    def parser(api: str) -> Callable[[Any], ContactCenterEvent]:
        parse = original(api)

        def as_echo(payload: Any) -> ContactCenterEvent:
            event = parse(payload)
            if event.kind is EventKind.AGENT_MESSAGE:
                return replace(event, kind=EventKind.UNHANDLED, detail={}, note=ECHO_NOTE)
            return event

        return as_echo

    monkeypatch.setattr(services, "webhook_parser", parser)
    return Defect("agent message classed as an echo", _kept_as_unhandled, "chat-api-v2")


def _kept_as_unhandled(violation: str, result: Result) -> bool:
    """An agent message missing from the timeline whose receipt says it was kept as not acted on."""
    if not (violation.startswith("[4 timeline] TEXT") and " 0 times" in violation) or result.sim is None:
        return False
    event_id = violation.split()[3]
    receipt = result.sim.ddb.items.get((f"WEBHOOK#{TENANT_ID}#{event_id}", "RECEIPT"), {})
    return bool(receipt.get("outcome", {}).get("S") == "unhandled")


@pytest.fixture
def publish_skipped_after_a_record(monkeypatch: pytest.MonkeyPatch) -> Defect:
    """The connector's own events are recorded without their outbox mark and never published."""
    from casebridge import cases, messages, outbox, webhooks  # noqa: PLC0415
    from casebridge.store.cases import CaseItems  # noqa: PLC0415

    record = CaseItems.record_case_event

    @functools.wraps(record)
    def without_mark(self: CaseItems, *args: Any, **kwargs: Any) -> Any:
        return record(self, *args, **{**kwargs, "pending_publish": False})

    monkeypatch.setattr(CaseItems, "record_case_event", without_mark)
    for module in (outbox, cases, messages, webhooks):  # each module's own name for it
        monkeypatch.setattr(module, "publish_recorded", lambda *a, **k: None)
    return Defect("a publish skipped after a record", lambda v, r: "never reached the bus (on no outbox: lost)" in v)


@pytest.fixture
def outbox_without_a_sweeper(monkeypatch: pytest.MonkeyPatch) -> Iterator[Defect]:
    """The outbox is published only by the next request for its case: nothing sweeps it."""
    monkeypatch.setattr(Simulation, "start_outbox_sweeper", lambda self: None)
    yield Defect(
        "an outbox without a sweeper",
        lambda v, r: v.startswith("[7 outbox]") or "never reached the bus (still on the case's outbox)" in v,
    )


@pytest.fixture
def adopted_early_agent_file_published_with_the_url(monkeypatch: pytest.MonkeyPatch) -> Defect:
    """An agent's file that arrived before its case knew the conversation is adopted as 8x8 sent it: no casebridge
    attachmentId, no copy, 8x8's pre-signed URL on the timeline and the bus."""
    from casebridge import cases  # noqa: PLC0415

    monkeypatch.setattr(cases, "_with_attachment_references", lambda services, case_id, entry: entry)
    return Defect(
        "an adopted early agent file published with 8x8's URL",
        lambda v, r: v.startswith("[9 agent files]") and "pre-signed URL" in v,
        "chat-gateway-v1",
    )


@pytest.fixture
def console_redrive_taken_for_a_redelivery(monkeypatch: pytest.MonkeyPatch) -> Defect:
    """A message SQS's own redrive moved back as it was (same body, same redrive number) is taken for a queue
    redelivery of the dead-lettered one: ignored, and gone from both queues."""
    from casebridge import messages  # noqa: PLC0415

    original = messages._already_dead_lettered

    def by_body_only(services: Any, case: Any, record: Any, message: Any, queue_message_id: str) -> bool:
        return original(services, case, record, message, "")

    monkeypatch.setattr(messages, "_already_dead_lettered", by_body_only)
    return Defect(
        "a console redrive taken for a redelivery",
        lambda v, r: v.startswith("[10 redrive]") and "SQS's DLQ redrive" in v,
    )


# ---- the tests ------------------------------------------------------------------------------------------------------


def test_an_ambiguous_create_treated_as_final_is_found(
    ambiguous_create_treated_as_final: Defect, bounded_run: RunSummary
) -> None:
    _found(ambiguous_create_treated_as_final, bounded_run)


def test_a_reused_dead_letter_deduplication_id_is_found(
    dead_letter_deduplication_id_reused: Defect, bounded_run: RunSummary
) -> None:
    _found(dead_letter_deduplication_id_reused, bounded_run)


def test_a_time_ordered_cursor_is_found(time_ordered_cursor: Defect, bounded_run: RunSummary) -> None:
    _found(time_ordered_cursor, bounded_run)


def test_an_agent_message_classed_as_an_echo_is_found(
    agent_message_classed_as_echo: Defect, bounded_run: RunSummary
) -> None:
    _found(agent_message_classed_as_echo, bounded_run)


def test_a_publish_skipped_after_a_record_is_found(
    publish_skipped_after_a_record: Defect, bounded_run: RunSummary
) -> None:
    _found(publish_skipped_after_a_record, bounded_run)


def test_an_outbox_without_a_sweeper_is_found(outbox_without_a_sweeper: Defect, bounded_run: RunSummary) -> None:
    _found(outbox_without_a_sweeper, bounded_run)


def test_an_adopted_early_agent_file_published_with_the_url_is_found(
    adopted_early_agent_file_published_with_the_url: Defect, bounded_run: RunSummary
) -> None:
    _found(adopted_early_agent_file_published_with_the_url, bounded_run)


def test_a_console_redrive_taken_for_a_redelivery_is_found(
    console_redrive_taken_for_a_redelivery: Defect, bounded_run: RunSummary
) -> None:
    _found(console_redrive_taken_for_a_redelivery, bounded_run)
