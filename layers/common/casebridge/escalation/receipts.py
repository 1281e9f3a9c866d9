"""The channel's side of reading: `POST /cases/{id}/read` sends 8x8's read receipt (Chat Gateway `/read-receipt`;
everything up to readAt counts as read, ESCALATION.md §7). 8x8 may accept it with no visible effect (§10.12)."""

from __future__ import annotations

from casebridge.attachments.storage import require_gateway
from casebridge.business_api.models import ReadRequest
from casebridge.clock import now_ms
from casebridge.errors import CaseNotFound, Conflict
from casebridge.observability import MetricUnit, metrics
from casebridge.services import Services


def send_read(services: Services, case_id: str, request: ReadRequest) -> int:
    """Returns the readAt sent (epoch ms)."""
    require_gateway(services, "read receipts")
    case = services.store.get_case(case_id)
    if case is None:
        raise CaseNotFound(f"case {case_id} does not exist")
    if not case.conversation_id:
        raise Conflict("the case has no 8x8 conversation yet: there is nothing to mark read")
    read_at = request.read_at if request.read_at is not None else now_ms()
    services.contact_center.send_read_receipt(case.conversation_id, request.author_type, read_at)
    metrics.add_metric(name="ReadReceiptsSent", unit=MetricUnit.Count, value=1)
    return read_at
