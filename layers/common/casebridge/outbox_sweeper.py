"""The outbox sweeper: EventBridge runs it every minute (template.yaml, a Schedule event). Every case with an entry
on its outbox (recorded, not yet on the bus) carries `outboxShard` and `outboxSince` (the oldest pending entry's
time) and so sits on the sparse PendingOutboxIndex; what has been pending longer than a short delay (the request
that recorded it had its chance) is published here. A case nobody touches again still reaches the bus.

Reports the age of the oldest pending entry (metric `OutboxOldestPendingSeconds`), whatever the delay.
"""

from __future__ import annotations

from dataclasses import dataclass

from casebridge.cases import adopt_settled_conversation, take_in_opening_of
from casebridge.clock import now_ms
from casebridge.observability import MetricUnit, logger, metrics
from casebridge.outbox import flush_outbox
from casebridge.services import Services


@dataclass(frozen=True)
class SweepReport:
    pending: int  # cases with something pending
    swept: int  # of them, old enough to publish
    failures: int  # cases whose publish failed (they stay on the index: the next sweep tries again)
    oldest_pending_ms: int  # age of the oldest pending entry (0: none)


def sweep_outbox(services: Services) -> SweepReport:
    now = now_ms()
    pending = services.store.pending_outboxes()
    oldest = max(0, now - min(since for _, since in pending)) if pending else 0
    metrics.add_metric(name="OutboxOldestPendingSeconds", unit=MetricUnit.Seconds, value=oldest / 1000)
    cutoff = now - services.settings.outbox_sweep_delay_seconds * 1000
    due = [case_id for case_id, since in pending if since <= cutoff]
    failures = 0
    for case_id in due:
        try:
            case = services.store.get_case(case_id)
            if case is None:
                continue
            if case.conversation_id is None:
                # An ambiguous create nobody opened again: 8x8's conversation is adopted once the create settled.
                if (case.opening_ambiguous or case.opening_attempts) and adopt_settled_conversation(
                    services, case_id
                ) is None:
                    continue  # not yet: it stays on the index
                case = services.store.get_case(case_id) or case
                if case.conversation_id is None:  # 8x8 has none: the next open looks up before creating
                    services.store.clear_outbox_mark(case_id, opening_looked_up=True)
                    continue
            if case.early_events_untaken and case.conversation_id:  # its opener died (or lost) before taking in
                take_in_opening_of(services, case)
                case = services.store.get_case(case_id) or case
            if case.pending_publish:
                flush_outbox(services, case)
            else:  # published meanwhile, the index not yet told
                services.store.clear_outbox_mark(case_id)
        except Exception:
            failures += 1
            logger.exception("outbox sweep failed for a case; the next sweep tries again", extra={"caseId": case_id})
    if failures:
        metrics.add_metric(name="OutboxSweepFailures", unit=MetricUnit.Count, value=failures)
    logger.info("outbox swept", extra={"pending": len(pending), "swept": len(due), "failures": failures})
    return SweepReport(len(pending), len(due), failures, oldest)
