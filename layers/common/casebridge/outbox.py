"""A case's outbox: every timeline entry is recorded with its outbox mark, held by the request that recorded it
(store.table.OUTBOX_HOLD_MS), published, then taken off the outbox. What a request could not publish is taken by
the next request for the case or by the outbox sweeper, one of them at a time (a conditional claim per entry), so
an entry reaches the bus once unless a publish's answer is lost."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

from casebridge.observability import MetricUnit, logger, metrics
from casebridge.services import Services
from casebridge.store.records import CaseRecord, TimelineEntry, WebhookReceipt


def once_per_event_id(services: Services, entry: TimelineEntry) -> WebhookReceipt:
    """A connector-made event has a stable eventId per occasion: two requests deciding the same occasion at once
    (8x8's retry, the sweep, a redelivered send) record it once, under a receipt written in the same transaction."""
    return WebhookReceipt(services.settings.tenant_id, entry.event_id, "", entry.type, entry.conversation_id, "own")


def publish_recorded(services: Services, case_id: str, entries: Iterable[TimelineEntry]) -> None:
    """Publish entries this request holds (it recorded them, or took them off the outbox), then take them off the
    outbox. A failed publish lets go of them, so the next request for the case publishes them without waiting
    for the hold to run out."""
    batch = sorted(entries, key=lambda e: e.sort_key)
    if not batch:
        return
    with letting_go_on_failure(services, case_id, batch):
        services.publisher.publish(case_id, batch)
    services.store.mark_published(case_id, {e.sort_key for e in batch})


def let_go(services: Services, case_id: str, entries: Iterable[TimelineEntry]) -> None:
    """This request recorded them and will not publish them (it is failing): the next request for the case may,
    without waiting for the hold to run out. Best effort: the hold runs out otherwise."""
    sort_keys = {e.sort_key for e in entries}
    if sort_keys:
        with contextlib.suppress(Exception):
            services.store.let_go_of_outbox_entries(case_id, sort_keys)


@contextlib.contextmanager
def letting_go_on_failure(services: Services, case_id: str, recorded: list[TimelineEntry]) -> Iterator[None]:
    """Entries recorded into `recorded` inside the block are let go of if the block fails."""
    try:
        yield
    except Exception:
        let_go(services, case_id, recorded)
        raise


def flush_outbox(services: Services, case: CaseRecord) -> None:
    """Publish what an earlier request recorded and let go of (its publish failed) or held past its hold (it
    died). An entry its recorder still holds is left to it: publishing it here too would put it on the bus twice."""
    if not case.pending_publish:
        return
    entries, gone = services.store.claim_outbox_entries(case.case_id, set(case.pending_publish))
    publish_recorded(services, case.case_id, entries)
    if gone:  # expired from the timeline (TTL): nothing left to publish
        services.store.mark_published(case.case_id, gone)
    if entries:
        logger.info("recorded events published late", extra={"count": len(entries)})
        metrics.add_metric(name="EventsPublishedLate", unit=MetricUnit.Count, value=len(entries))
