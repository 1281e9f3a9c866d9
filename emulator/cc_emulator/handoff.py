"""Operations around a hand-off (ESCALATION.md): post-agent assignment, read receipts both ways, the bot's
thinking indicator, wrap-up codes.

`HandoffOps` is one part of `Engine`; the timers and events behind these live in `aftercare.Aftercare`.
"""

from __future__ import annotations

from .aftercare import wrap_up_codes
from .delivery import now_ms
from .model import Conversation, NotFound, PostAgentAssignment
from .routing import Router
from .state import CenterState


class HandoffOps(CenterState):
    router: Router

    def post_agent_assignment(
        self,
        conversation_id: str,
        webhook_id: str,
        notify_channel_webhook: bool,
        max_total_minutes: int | None,
        user_timeout_minutes: int | None,
    ) -> Conversation:
        """Gateway: once the agent's part ends, the conversation goes to `webhook_id` (see `aftercare`)."""
        with self.lock:
            conv = self.get_conversation(conversation_id)
            self.get_webhook(webhook_id)
            assignment = PostAgentAssignment(
                webhook_id, notify_channel_webhook, max_total_minutes, user_timeout_minutes
            )
            self.router.aftercare.register(conv, assignment)
            return conv

    def read_receipt(self, conversation_id: str, author_type: str, read_at: int) -> Conversation:
        """The integration's user or bot read everything up to `read_at` (epoch ms); the agent's desk shows it."""
        with self.lock:
            conv = self.get_conversation(conversation_id)
            conv.read_by[author_type] = max(read_at, conv.read_by.get(author_type, 0))
            return conv

    def thinking(self, conversation_id: str, seconds: int) -> Conversation:
        """The bot is processing: shown to the agent until it writes or `seconds` pass."""
        with self.lock:
            conv = self.get_conversation(conversation_id)
            conv.thinking_until = now_ms() + seconds * 1000
            return conv

    def agent_read(self, agent_id: str, read_at: int | None = None) -> Conversation:
        """The agent read its conversation up to `read_at` (default now): Gateway ACTIVITY read-receipts
        with the `gateway_read_receipts` setting."""
        with self.lock:
            return self.router.read(self.router.agent(agent_id), read_at)

    def wrap_up_codes(self, queue_id: str) -> list[dict[str, str]]:
        with self.lock:
            if queue_id not in self.queues:
                raise NotFound("Queue", queue_id)
            return wrap_up_codes(self, queue_id)
