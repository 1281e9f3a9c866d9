"""Case lifecycle: open the case's conversation (once), the customer leaving, and reading a case.

Events the connector makes itself (ConversationOpened, CustomerLeft, MessageFailed, early 8x8 events taken
in on open) go through the case's outbox: the timeline entry and the case's `pendingPublish` mark are written
in one transaction, then published, then unmarked. A publish that fails leaves the mark, and the next request
that touches the case publishes it: every timeline event reaches the bus at least once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TypeVar

from casebridge.business_api.models import Customer, OpenConversationRequest, to_json_data
from casebridge.business_api.views import TimelineView, timeline_view
from casebridge.clock import monotonic, now_ms, sleep
from casebridge.contact_center.base import NewConversation
from casebridge.errors import (
    CaseNotFound,
    Conflict,
    ContactCenterError,
    ContactCenterMisconfigured,
    UnknownChannel,
    UnsupportedByContactCenterApi,
)
from casebridge.escalation.handback_setup import after_conversation_created
from casebridge.events import EventKind
from casebridge.observability import MetricUnit, logger, metrics
from casebridge.outbox import flush_outbox, letting_go_on_failure, once_per_event_id, publish_recorded
from casebridge.services import Services
from casebridge.state import STATE_KINDS, CaseState, LiveState, StateEvent, customer_left, record_event
from casebridge.store import StaleCase
from casebridge.store.records import CaseRecord, OpeningAttempt, TimelineEntry, WebhookReceipt

T = TypeVar("T")
RECORD_TRIES = 8  # a timeline write racing the case's other writes
OPENING_LEASE_MS = 30_000  # longer than an 8x8 create call can take
WAIT_FOR_PEER_S = 8.0
SETTLE_LOOKUP_EVERY_S = 1.0  # while an unknown create settles: how often a waiting opener looks again


class _StillSettling(Exception):
    """8x8 has no conversation for the case yet, but an earlier create's outcome is unknown and recent: 8x8 may
    still be making it. Creating now could make a second one."""

    def __init__(self, settles_at: int) -> None:
        super().__init__(settles_at)
        self.settles_at = settles_at


def open_request_hash(request: OpenConversationRequest) -> str:
    canonical = json.dumps(to_json_data(request), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def customer_hash(customer: Customer) -> str:
    canonical = json.dumps(to_json_data(customer), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _is_empty(request: OpenConversationRequest) -> bool:
    return request.customer.is_empty() and not request.history and not request.routing and not request.channel_id


def opening_attempt(services: Services, request: OpenConversationRequest) -> OpeningAttempt:
    routing = (request.routing.type, request.routing.id) if request.routing else None
    channel_id = request.channel_id or services.settings.channel_id
    return OpeningAttempt(channel_id, open_request_hash(request), customer_hash(request.customer), routing)


def open_conversation(services: Services, case_id: str, request: OpenConversationRequest) -> tuple[CaseRecord, bool]:
    """The case's conversation, created at most once. Returns (case, created now)."""
    store = services.store
    case = store.get_case(case_id)
    if case and case.conversation_id:
        # A retry: an earlier open may have failed after recording the conversation, before taking in its
        # early events.
        if case.take_in_due(now_ms()):
            take_in_opening_of(services, case)
        else:  # an early event written while the conversation was being recorded
            adopt_early_events(services, case_id, case.conversation_id)
        flush_outbox(services, require_case(services, case_id))
        return _reconcile(services, require_case(services, case_id), request), False
    attempt = opening_attempt(services, request)
    deadline = monotonic() + WAIT_FOR_PEER_S
    while True:
        claim = store.claim_opening(case_id, OPENING_LEASE_MS, attempt)
        if claim:
            try:
                return _create(services, case_id, request, attempt, claim.found), True
            except _StillSettling as settling:
                if monotonic() + SETTLE_LOOKUP_EVERY_S > deadline:
                    retry_after = max(1, -(-(settling.settles_at - now_ms()) // 1000))
                    raise Conflict(
                        "8x8 may still be making the case's conversation (an earlier create's outcome is unknown); "
                        "retry shortly",
                        retry_after=retry_after,
                    ) from None
                sleep(SETTLE_LOOKUP_EVERY_S)
                continue
        # Another request holds the claim: wait for its conversation instead of opening a second one.
        if claim.found and claim.found.conversation_id:
            return _reconcile(services, claim.found, request), False
        if monotonic() > deadline:
            raise Conflict("the case's conversation is being opened by another request; retry shortly", retry_after=1)
        sleep(0.1)


def _reconcile(services: Services, case: CaseRecord, request: OpenConversationRequest) -> CaseRecord:
    """An open request for a case that already has its conversation: a retry (the request it was made from), a
    bare open, the data it already has, or new data that 8x8 must get — never silently dropped."""
    digest = open_request_hash(request)
    if _is_empty(request) or digest in case.open_request_hashes:
        return case
    routing = to_json_data(request.routing) if request.routing else None
    cannot = [
        name
        for name, given in (
            ("history", bool(request.history)),
            ("routing", routing is not None and routing != case.routing),
            ("channelId", bool(request.channel_id) and request.channel_id != case.channel_id),
        )
        if given
    ]
    if cannot:
        raise Conflict(
            f"the case's conversation already exists (opened by an earlier request), so {', '.join(cannot)} "
            "cannot be applied to it now; send the customer data alone to update it"
        )
    customer = customer_hash(request.customer)
    if request.customer.is_empty() or customer == case.customer_hash:
        return case  # nothing would change
    assert case.conversation_id is not None
    try:
        services.contact_center.update_customer(case.conversation_id, case.case_id, request.customer)
    except UnsupportedByContactCenterApi as error:
        raise Conflict(
            "the case's conversation already exists with other customer data, and the configured 8x8 API "
            f"cannot update it ({error.message})"
        ) from None
    services.store.set_open_request_hash(case, digest, customer)
    logger.info("customer data of an open conversation updated")
    return require_case(services, case.case_id)


def _agreed(values: Iterable[T]) -> T | None:
    """The one value all agree on, else None."""
    distinct = set(values)
    return distinct.pop() if len(distinct) == 1 else None


def _create(
    services: Services,
    case_id: str,
    request: OpenConversationRequest,
    attempt: OpeningAttempt,
    found: CaseRecord | None,
) -> CaseRecord:
    """Under the claim: adopt the conversation of an earlier create whose outcome is unknown, or create one.
    `found` is the case as the claim found it (the write's old image), never an earlier read: an ambiguous create
    that ended between that read and the claim is seen."""
    # Creates whose outcome is unknown are on the case: released ambiguous, or never released (their opener died,
    # the claim could be taken only because its lease ran out). Each channel they used is looked up first.
    earlier = found.opening_attempts if found else frozenset()
    unsure = bool(found and (found.opening_ambiguous or found.opening_until or earlier))
    channels = sorted({a.channel_id for a in earlier}) or [attempt.channel_id]
    client = services.contact_center
    made_by = [attempt]
    creating = False
    try:
        conversation_id, channel_id = None, attempt.channel_id
        for candidate in channels if unsure else []:
            conversation_id = client.find_conversation(case_id, candidate)
            if conversation_id:
                channel_id = candidate
                made_by = [a for a in earlier if a.channel_id == candidate] or [attempt]
                logger.warning("conversation of an earlier unfinished create found; adopted")
                metrics.add_metric(name="ConversationsReconciled", unit=MetricUnit.Count, value=1)
                break
        if conversation_id is None and found is not None and unsure and found.opening_settles_at > now_ms():
            raise _StillSettling(found.opening_settles_at)
        if conversation_id is None:
            creating = True
            conversation_id = client.create_conversation(
                NewConversation(channel_id, case_id, request.customer, request.history, request.routing)
            )
    except _StillSettling:
        # Nothing asked of 8x8: this attempt is forgotten (unless an earlier one is the same), the unknown stays.
        services.store.release_claim(case_id, attempt=None if attempt in earlier else attempt)
        raise
    except ContactCenterError as error:
        ambiguous = error.ambiguous or unsure
        settling = creating and error.ambiguous  # a lookup's timeout made nothing that could still appear
        settles_at = now_ms() + int(services.settings.create_settle_seconds * 1000) if settling else 0
        services.store.release_claim(case_id, ambiguous=ambiguous, attempt=attempt, settles_at=settles_at)
        raise
    except Exception:
        # Raised while asking 8x8 to create (an answer nobody expected): it may have made the conversation.
        settles_at = now_ms() + int(services.settings.create_settle_seconds * 1000) if creating else 0
        services.store.release_claim(case_id, ambiguous=unsure or creating, attempt=attempt, settles_at=settles_at)
        raise
    _record_made_by(services, case_id, conversation_id, channel_id, made_by)
    logger.append_keys(conversationId=conversation_id)
    logger.info("conversation opened for case", extra={"channelId": channel_id})
    metrics.add_metric(name="ConversationsOpened", unit=MetricUnit.Count, value=1)
    try:
        take_in_opening(services, case_id, conversation_id, channel_id, now_ms())
    except Exception:
        with contextlib.suppress(Exception):  # best effort: else the hold runs out (TAKE_IN_HOLD_MS)
            services.store.let_go_of_take_in(case_id)
        raise
    after_conversation_created(services, conversation_id)  # Gateway post-agent assignment (never fails the open)
    if attempt in made_by:  # this request's history is in the conversation: the timeline gets it too
        _record_history(services, case_id, conversation_id, request)
    case = require_case(services, case_id)
    # Adopted from another request: this request's own data is applied to it, or refused, as on any open.
    return case if attempt in made_by else _reconcile(services, case, request)


def _record_made_by(
    services: Services, case_id: str, conversation_id: str, channel_id: str, made_by: list[OpeningAttempt]
) -> None:
    """The case's conversation, recorded with what the attempts it may have been made by agree on."""
    routing = _agreed(a.routing for a in made_by)
    services.store.record_conversation(
        case_id,
        conversation_id,
        channel_id,
        # A retry of any request this conversation may have been made from is that request again.
        open_request_hashes={a.request_hash for a in made_by},
        customer_hash=_agreed(a.customer_hash for a in made_by),
        routing={"type": routing[0], "id": routing[1]} if routing else None,
    )


def adopt_settled_conversation(services: Services, case_id: str) -> bool | None:
    """For the outbox sweeper: a case whose create's outcome is unknown, once it has settled, and nobody opened it
    again. The conversation 8x8 did make is looked up and adopted (its early events taken in, ConversationOpened
    published); never created here, the channel may have given up. True: adopted; False: 8x8 has none (the case
    stays unsure: the next open looks up first); None: not now (settling, or another request holds the claim)."""
    case = services.store.get_case(case_id)
    if case is None or case.conversation_id or case.opening_settles_at > now_ms():
        return None
    claim = services.store.claim_opening(case_id, OPENING_LEASE_MS)
    if not claim or claim.found is None:
        return None
    found = claim.found
    earlier = found.opening_attempts
    try:
        for channel_id in sorted({a.channel_id for a in earlier}) or [found.channel_id or services.settings.channel_id]:
            conversation_id = services.contact_center.find_conversation(case_id, channel_id)
            if not conversation_id:
                continue
            _record_made_by(
                services, case_id, conversation_id, channel_id, [a for a in earlier if a.channel_id == channel_id]
            )
            logger.warning("conversation of an unfinished create adopted by the sweeper")
            metrics.add_metric(name="ConversationsReconciled", unit=MetricUnit.Count, value=1)
            take_in_opening(services, case_id, conversation_id, channel_id, now_ms())
            after_conversation_created(services, conversation_id)
            return True
    except Exception:
        services.store.release_claim(case_id)  # the unknown stays: the next sweep (or open) looks again
        raise
    services.store.release_claim(case_id)
    return False


def take_in_opening(services: Services, case_id: str, conversation_id: str, channel_id: str, opened_at: int) -> None:
    """What follows recording a case's conversation: ConversationOpened (once per conversation, under a receipt),
    then the events 8x8 sent before the case knew it, all recorded before any is published (a failed publish
    strands none). Done by whoever gets there first while the case is marked `earlyEventsUntaken`: the opener, a
    retry of the open, a read, or the outbox sweeper (the case stays on its index until done), so ConversationOpened
    is not lost when the opener's writes all lose to the case's other writers."""
    opened = TimelineEntry(
        event_id=f"opened-{conversation_id}",
        type="ConversationOpened",
        conversation_id=conversation_id,
        occurred_at=opened_at,
        received_at=opened_at,
        detail={"channelId": channel_id},
    )
    recorded: list[TimelineEntry] = []
    with letting_go_on_failure(services, case_id, recorded):
        entry = record_and_publish(
            services, case_id, opened, lambda live: None, publish=False, receipt=once_per_event_id(services, opened)
        )
        recorded.extend([entry] if entry else [])
        _adopt_each(services, case_id, conversation_id, recorded)
    publish_recorded(services, case_id, recorded)
    services.store.early_events_taken(case_id)


def _record_history(services: Services, case_id: str, conversation_id: str, request: OpenConversationRequest) -> None:
    """The open's history on the timeline as CustomerMessage {history: true}, so the transcript and every reader
    have the conversation as the agent saw it. One id per message and conversation: recorded once. Never fails
    the open (the history is in 8x8 whatever happens here); a crash right here leaves it out of the transcript."""
    if not request.history:
        return
    at = now_ms()
    entries = [
        TimelineEntry(
            event_id=f"history-{conversation_id}-{number}",
            type="CustomerMessage",
            conversation_id=conversation_id,
            occurred_at=at,
            received_at=at,
            detail={
                "messageId": f"history-{conversation_id}-{number}",
                "authorType": message.author_type,
                "history": True,
                **({"text": message.text} if message.text is not None else {}),
                **({"cards": [card.wire() for card in message.cards]} if message.cards else {}),
            },
        )
        for number, message in enumerate(request.history, 1)
    ]
    try:
        record_own_entries(services, case_id, entries)
    except Exception:
        logger.exception("the open's history could not be put on the timeline; the conversation has it")


def record_own_entries(services: Services, case_id: str, entries: list[TimelineEntry]) -> None:
    """Record connector-made entries in this order (the timeline keeps commit order), each once per eventId (a
    repeated request records none twice), then publish them; a failure lets go of what was recorded, so the next
    request for the case or the outbox sweeper publishes it."""
    recorded: list[TimelineEntry] = []
    with letting_go_on_failure(services, case_id, recorded):
        for entry in entries:
            taken = record_and_publish(
                services, case_id, entry, lambda live: None, publish=False, receipt=once_per_event_id(services, entry)
            )
            recorded += [taken] if taken else []
    publish_recorded(services, case_id, recorded)


def take_in_opening_of(services: Services, case: CaseRecord) -> None:
    """take_in_opening for a case read with its conversation recorded and not yet taken in (take_in_due)."""
    assert case.conversation_id is not None
    at = case.conversation_opened_at or now_ms()
    take_in_opening(services, case.case_id, case.conversation_id, case.channel_id or services.settings.channel_id, at)


def record_and_publish(
    services: Services,
    case_id: str,
    entry: TimelineEntry,
    transition: Callable[[LiveState], LiveState | None],
    known: CaseRecord | None = None,
    *,
    unless: Callable[[CaseRecord], bool] | None = None,
    publish: bool = True,
    taking_early: TimelineEntry | None = None,
    receipt: WebhookReceipt | None = None,
) -> TimelineEntry | None:
    """Timeline entry + state change + outbox mark, retried on concurrent updates; then published (unless
    `publish` is False: the caller publishes it with others; the outbox holds it meanwhile).
    `known`: the case as the caller just read it, used for the first try instead of reading it again.
    `unless`: nothing is recorded when it holds for the case as read (someone else recorded the same fact).
    `taking_early`: the early event this entry takes in, deleted in the same write (one adopter records it).
    `receipt`: written with the entry, if not on file (else nothing is recorded): one entry per event id.
    Returns the entry as recorded (with its timeline sequence), or None when `unless` held (or the early event
    was taken in by another request)."""
    for attempt in range(RECORD_TRIES):
        case, known = known or services.store.get_case(case_id), None
        if case is None:
            raise CaseNotFound(f"case {case_id} does not exist")
        if unless is not None and unless(case):
            return None
        live: LiveState | None = transition(case.live)
        try:
            recorded = services.store.record_case_event(
                case, entry, live, receipt, pending_publish=True, taking_early=taking_early
            )
        except StaleCase:
            # Every timeline entry takes the case's next sequence: writers of one busy case take turns.
            sleep(random.uniform(0, min(0.2, 0.005 * 2**attempt)))
            continue
        if recorded is None:  # the early event was taken in, or the receipt written, by another request
            return None
        if publish:
            publish_recorded(services, case_id, [recorded])
        return recorded
    raise Conflict("the case is changing fast; retry shortly", retry_after=1)


def adopt_early_events(
    services: Services, case_id: str, conversation_id: str, *, publish: bool = True
) -> list[TimelineEntry]:
    """Events 8x8 sent before the case knew its conversation (QUEUED usually) join the case now. All are
    recorded (each with its outbox mark) before any is published: a failed publish strands none of them.
    An agent's files get their casebridge references and copy jobs here, as at the intake."""
    adopted: list[TimelineEntry] = []
    with letting_go_on_failure(services, case_id, adopted):
        _adopt_each(services, case_id, conversation_id, adopted)
    if publish:
        publish_recorded(services, case_id, adopted)
    return adopted


def _adopt_each(services: Services, case_id: str, conversation_id: str, adopted: list[TimelineEntry]) -> None:
    for early in sorted(services.store.early_events(conversation_id), key=lambda e: e.sort_key):
        entry = _with_attachment_references(services, case_id, early)
        kind = EventKind(entry.type) if entry.type in EventKind._value2member_map_ else None

        def transition(
            live: LiveState, entry: TimelineEntry = entry, kind: EventKind | None = kind
        ) -> LiveState | None:
            if kind not in STATE_KINDS:
                return None
            return record_event(live, StateEvent.of(kind, entry.occurred_at, entry.event_id, entry.detail))

        recorded = record_and_publish(services, case_id, entry, transition, publish=False, taking_early=early)
        if recorded is not None:
            adopted.append(recorded)
            logger.info("early webhook event taken into its case", extra={"eventId": entry.event_id})


def _with_attachment_references(services: Services, case_id: str, entry: TimelineEntry) -> TimelineEntry:
    if not entry.detail.get("attachments"):
        return entry
    from casebridge.attachments.agent_files import take_in_agent_attachments  # noqa: PLC0415 - agent files only

    return replace(entry, detail=take_in_agent_attachments(services, case_id, entry.conversation_id, entry.detail))


def require_case(services: Services, case_id: str) -> CaseRecord:
    case = services.store.get_case(case_id)
    if case is None:
        raise CaseNotFound(f"case {case_id} does not exist")
    return case


def read_case(services: Services, case_id: str) -> CaseRecord:
    """GET /cases/{id}: also publishes what an earlier request left on the outbox, and takes in early events an
    open left behind while the case has heard nothing from 8x8 (best effort on a read)."""
    case = require_case(services, case_id)
    conversation_id = case.conversation_id
    if conversation_id and (case.early_events_untaken or case.live.state is CaseState.OPEN):
        try:
            if case.take_in_due(now_ms()):
                take_in_opening_of(services, case)
                case = require_case(services, case_id)
            elif adopt_early_events(services, case_id, conversation_id):
                case = require_case(services, case_id)
        except Exception:
            logger.exception("early events not taken in; the next request for the case tries again")
    if case.pending_publish:
        try:
            flush_outbox(services, case)
        except Exception:
            logger.exception("late publish failed; it is retried on the next request for the case")
    return case


def customer_leaves(services: Services, case_id: str) -> CaseRecord:
    """The customer left. Idempotent: leaving a closed case changes nothing."""
    case = require_case(services, case_id)
    conversation_id = case.conversation_id
    if not conversation_id:
        raise Conflict("the case's conversation is still being opened; retry shortly", retry_after=1)
    logger.append_keys(conversationId=conversation_id)
    if case.take_in_due(now_ms()):  # ConversationOpened before CustomerLeft on the timeline
        take_in_opening_of(services, case)
        case = require_case(services, case_id)
    flush_outbox(services, case)
    if case.live.state is CaseState.CLOSED:
        return case
    services.contact_center.customer_leaves(conversation_id)
    left_at = now_ms()
    entry = TimelineEntry(
        event_id=f"left-{conversation_id}-{left_at}",
        type=EventKind.CUSTOMER_LEFT.value,
        conversation_id=conversation_id,
        occurred_at=left_at,
        received_at=left_at,
    )
    # 8x8's own "user left" event (Gateway) may have closed the case meanwhile: one CustomerLeft is enough.
    record_and_publish(
        services,
        case_id,
        entry,
        lambda live: customer_left(live, left_at),
        known=case,
        unless=lambda current: current.live.state is CaseState.CLOSED,
    )
    logger.info("customer left the conversation")
    return require_case(services, case_id)


def case_timeline(services: Services, case_id: str, after: str | None, limit: int) -> TimelineView:
    read_case(services, case_id)
    return timeline_after(services, case_id, after, limit)


def timeline_after(services: Services, case_id: str, cursor: str | None, limit: int) -> TimelineView:
    """The case's timeline events after `cursor` (None: from the first), in sequence order, at most `limit`.
    For any channel that resumes where it stopped (polling, a push channel): each event carries its `cursor`,
    and `next` resumes after the last one returned. An entry is given the next sequence when it commits, so
    one committed after a reader's cursor is never behind it. InvalidRequest: a cursor this API never gave."""
    entries, next_cursor = services.store.list_timeline(case_id, cursor, limit)
    return timeline_view(case_id, entries, next_cursor)


def open_for_caller(services: Services, case_id: str, request: OpenConversationRequest) -> tuple[CaseRecord, bool]:
    """POST /cases/{id}/conversation: open_conversation, where 8x8 refusing a channelId the caller gave is the
    caller's error (422 naming it), not the stack's configuration (500)."""
    try:
        return open_conversation(services, case_id, request)
    except ContactCenterMisconfigured as error:
        given = request.channel_id
        refused_channel = error.upstream_status == 404 or (
            error.upstream_status in (400, 422) and "channel" in error.message.lower()
        )
        if not given or given == services.settings.channel_id or not refused_channel:
            raise
        raise UnknownChannel(
            f"8x8 does not know the channelId '{given}' given in the request",
            details=[{"field": "channelId", "message": "8x8 has no such channel"}],
            upstream_status=error.upstream_status,
            upstream_code=error.upstream_code,
        ) from error
