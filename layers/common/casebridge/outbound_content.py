"""What one accepted message puts into 8x8: its text today (attachments and cards build on this)."""

from __future__ import annotations

from casebridge.outbound_queue import OutboundMessage
from casebridge.services import Services


def send_to_contact_center(services: Services, conversation_id: str, message: OutboundMessage) -> None:
    """Post the message's content to the case's conversation. Raises ContactCenterError like the client."""
    services.contact_center.send_message(conversation_id, message.text, message.authorType)
