"""What one accepted message puts into 8x8: its text, or (Chat Gateway) its attachments and cards.

Everything here runs inside one delivery attempt (casebridge.messages.deliver_message), so a rich message keeps
the case's order, retries, dead-letter path and no-duplicate record like any other: attachments are uploaded
first (each streamed from S3, and skipped when an earlier attempt already uploaded it), then one message
references 8x8's ids and carries the cards.
"""

from __future__ import annotations

from casebridge.attachments.delivery import deliver_attachments
from casebridge.contact_center.base import CHAT_GATEWAY_V1, RichMessage
from casebridge.events import message_fingerprint
from casebridge.outbound_queue import OutboundMessage
from casebridge.services import Services


def send_to_contact_center(services: Services, conversation_id: str, message: OutboundMessage) -> None:
    """Post the message's content to the case's conversation. Raises ContactCenterError like the client.
    On the Gateway the post's fingerprint is recorded first: 8x8 echoes it back, maybe before it answers."""
    gateway = services.contact_center.api == CHAT_GATEWAY_V1
    if not message.attachments and not message.cards:
        if gateway:
            services.store.record_posted(message.caseId, message_fingerprint(message.text))
        services.contact_center.send_message(conversation_id, message.text, message.authorType)
        return
    attachment_ids = deliver_attachments(services, conversation_id, message) if message.attachments else []
    if gateway:
        services.store.record_posted(message.caseId, message_fingerprint(message.text, attachment_ids))
    services.contact_center.send_rich_message(
        conversation_id, RichMessage(message.authorType, message.text or None, attachment_ids, message.cards)
    )
