"""What the connector needs from 8x8, whichever API serves it (Chat API v2 now, Chat Gateway next)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from casebridge.models import HistoryMessage


class ContactCenterClient(Protocol):
    def create_conversation(self, channel_id: str, customer: dict[str, str], history: Sequence[HistoryMessage]) -> str:
        """Open a conversation on the channel; returns 8x8's conversation id."""
        ...

    def send_message(self, conversation_id: str, text: str, author_type: str) -> None:
        """Post a customer or bot message; reopens the conversation if its interaction ended."""
        ...

    def customer_leaves(self, conversation_id: str) -> None:
        """The customer left: 8x8 ends the interaction and frees the agent."""
        ...
