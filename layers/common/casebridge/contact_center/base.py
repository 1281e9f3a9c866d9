"""What the connector needs from 8x8, whichever API serves it (Chat Gateway v1, the default, or Chat API v2)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol

import requests

if TYPE_CHECKING:
    from casebridge.business_api.models import (  # annotations only (the intake loads no models)
        Customer,
        HistoryMessage,
        Routing,
    )


ContactCenterApi = Literal["chat-gateway-v1", "chat-api-v2"]
CHAT_GATEWAY_V1: ContactCenterApi = "chat-gateway-v1"
CHAT_API_V2: ContactCenterApi = "chat-api-v2"


@dataclass(frozen=True)
class NewConversation:
    """A case's conversation to open on a channel: what create_conversation needs, whichever the API."""

    channel_id: str
    case_id: str
    customer: Customer
    history: Sequence[HistoryMessage] = ()
    routing: Routing | None = None  # Gateway only: v2 refuses a conversation with routing


@dataclass(frozen=True)
class RichMessage:
    """A message with uploaded attachments (8x8 ids) and/or cards ({contentType, content}); Gateway only."""

    author_type: str
    text: str | None = None
    attachment_ids: Sequence[str] = ()
    cards: Sequence[Mapping[str, Any]] = ()


class ContactCenterClient(Protocol):
    """One 8x8 API. Errors are casebridge.errors ContactCenter* classes; what an API cannot do raises
    UnsupportedByContactCenterApi (a 400 the business sees), before any call to 8x8."""

    api: ContactCenterApi

    def create_conversation(self, conversation: NewConversation) -> str:
        """Open the case's conversation on its channel; returns 8x8's conversation id."""
        ...

    def send_message(self, conversation_id: str, text: str, author_type: str) -> None:
        """Post a customer or bot message (on v2 this also reopens a conversation whose interaction ended)."""
        ...

    def customer_leaves(self, conversation_id: str) -> None:
        """The customer left: 8x8 ends the interaction and frees the agent. Already gone is success."""
        ...

    def route(self, conversation_id: str, routing: Routing) -> None:
        """Route the conversation again (Gateway: PATCH {assignment}); used to reopen where a message alone
        does not re-queue. v2 cannot: UnsupportedByContactCenterApi."""
        ...

    def update_customer(self, conversation_id: str, case_id: str, customer: Customer) -> None:
        """Replace the customer data on an existing conversation (Gateway: PATCH {user}). v2 cannot."""
        ...

    def find_conversation(self, case_id: str, channel_id: str) -> str | None:
        """The conversation 8x8 holds for this case on this channel, if it can be looked up (used after a
        create whose outcome is unknown). None: not found, or the API cannot search."""
        ...

    def send_typing(self, conversation_id: str, author_type: str) -> None:
        """Show the customer or bot typing to the agent (Gateway only)."""
        ...

    def upload_attachment(
        self, conversation_id: str, author_type: str, file_name: str, content_type: str, body: bytes | IO[bytes]
    ) -> str:
        """Upload a file to the conversation (Gateway multipart); returns 8x8's attachment id. v2 cannot."""
        ...

    def send_rich_message(self, conversation_id: str, message: RichMessage) -> None:
        """Post a message with attachments and/or cards. v2 cannot."""
        ...

    def download_attachment(self, conversation_id: str, attachment_id: str) -> requests.Response:
        """An agent attachment's content, streamed (the caller closes the response). v2 cannot."""
        ...

    def send_thinking(self, conversation_id: str, max_seconds: int = 60) -> None:
        """Show the bot thinking to the agent for up to `max_seconds` (Gateway `/thinking`). v2 cannot."""
        ...

    def send_read_receipt(self, conversation_id: str, author_type: str, read_at_ms: int) -> None:
        """The customer or bot read everything up to `read_at_ms` (Gateway `/read-receipt`). v2 cannot."""
        ...

    def assign_post_agent(
        self, conversation_id: str, webhook_id: str, max_total_minutes: int, user_timeout_minutes: int
    ) -> None:
        """Hand the conversation back to `webhook_id` once the agent is done (Gateway post-agent assignment,
        ESCALATION.md §4). v2 cannot."""
        ...
