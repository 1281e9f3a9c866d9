"""Webhook events: what happened in the contact center, rendered in the dialect of the receiving webhook.

A conversation's events go to its channel's webhook (while the bot has it after a post-agent assignment, to
that assignment's webhook, and also to the channel's when it asked to be notified). A webhook whose version is
"Chat Gateway v1.0" gets Chat Gateway v1 envelopes (`{eventType, conversationId, timestamp, data}`); any other gets Chat
API v2 ones (flat fields plus `messageType`). Happenings one dialect has no event for are skipped there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .delivery import Event, now_ms
from .model import Agent, Conversation, Message, Queue, Webhook, gateway_user
from .state import CenterState


class Notifier:
    """Reads the state; hands each rendered event to `send` (the delivery queue)."""

    def __init__(self, state: CenterState, send: Callable[[Event], None]) -> None:
        self.state = state
        self.send = send

    # -- happenings ---------------------------------------------------------------------------

    def conversation_update(self, conv: Conversation, state: str | None = None) -> None:
        """Gateway only: state, assignment or user data changed (created / active / idle)."""
        hook = self._hook(conv)
        if hook is None or not hook.gateway:
            return
        data = {
            "state": state or conv.gateway_state,
            "assignment": conv.assignment(),
            "user": gateway_user(conv),
            "channel": "ChatAPI",
        }
        self._gateway(hook, conv, "CONVERSATION_UPDATE", data)

    def queued(self, conv: Conversation, queue: Queue) -> None:
        hook = self._hook(conv)
        if hook is None:
            return
        data = {"queueId": queue.id, "queueName": queue.name}
        if hook.gateway:
            self._gateway(hook, conv, "QUEUED", data)
        else:
            self._v2(hook, conv, "QUEUED", data)

    def agent_joined(self, conv: Conversation, agent: Agent) -> None:
        self._agent_change(conv, agent, "AGENT_JOINED", "joined")

    def agent_left(self, conv: Conversation, agent: Agent, wrap_up_code: dict[str, str] | None = None) -> None:
        """`wrapUpCode` (the code's name) only with the `wrap_up_code_on_webhook` setting: 8x8 sends none."""
        extra = {}
        if wrap_up_code is not None and self.state.config.wrap_up_code_on_webhook:
            extra = {"wrapUpCode": wrap_up_code["name"]}
        self._agent_change(conv, agent, "AGENT_LEFT", "left", extra)

    def read_receipt(self, conv: Conversation, agent_id: str, read_at: int) -> None:
        """Gateway only, with the `gateway_read_receipts` setting (8x8: "not yet supported by any channel")."""
        hook = self._hook(conv)
        if hook is None or not hook.gateway or not self.state.config.gateway_read_receipts:
            return
        value = [{"timestamp": read_at, "users": [{"id": agent_id, "type": "agent"}]}]
        # As in 8x8's example, the envelope's timestamp is the read time too.
        self._gateway(hook, conv, "ACTIVITY", {"name": "read-receipts", "value": value}, timestamp=read_at)

    def user_left(self, conv: Conversation) -> None:
        """Gateway only: the user left through PATCH participants/user."""
        hook = self._hook(conv)
        if hook is not None and hook.gateway:
            data = {"memberType": "user", "change": "left", "id": conv.customer_participant_id}
            self._gateway(hook, conv, "MEMBERS_CHANGED", data)

    def transfer(self, conv: Conversation) -> None:
        hook = self._hook(conv)
        if hook is None:
            return
        if hook.gateway:
            # "This event does not include a data field."
            self._gateway(hook, conv, "TRANSFER", None)
        else:
            self._v2(hook, conv, "TRANSFER", {})

    def message(self, conv: Conversation, msg: Message, agent: Agent | None = None) -> None:
        """v2: agent messages only (TEXT). Gateway: every participant's message, echoes included."""
        hook = self._hook(conv)
        if hook is None:
            return
        if not hook.gateway:
            if msg.author_type == "agent" and agent is not None:
                extra = {"agentId": agent.id, "agentName": agent.name, "message": msg.text}
                self._v2(hook, conv, "TEXT", extra, message_type="AGENT", timestamp=msg.timestamp)
            return
        echo = msg.author_type in ("user", "bot") and self.state.config.gateway_echo_is_echo
        data: dict[str, Any] = {
            "isEcho": echo,
            "sender": {"id": msg.sender_id, "type": msg.author_type},
            "text": msg.text,
        }
        if msg.attachments:
            data["attachments"] = [self._attachment(conv, att_id) for att_id in msg.attachments]
        if msg.cards:
            data["cards"] = [dict(c) for c in msg.cards]
        self._gateway(hook, conv, "MESSAGE", data, timestamp=msg.timestamp)

    def typing(self, conv: Conversation, agent: Agent, typing: bool) -> None:
        """Gateway only: ACTIVITY typing; an empty `users` list means the agent stopped."""
        hook = self._hook(conv)
        if hook is None or not hook.gateway:
            return
        users = [{"id": agent.id, "type": "agent"}] if typing else []
        self._gateway(hook, conv, "ACTIVITY", {"name": "typing", "value": {"users": users}})

    # -- dialects -----------------------------------------------------------------------------

    def _agent_change(
        self, conv: Conversation, agent: Agent, v2_type: str, change: str, extra: dict[str, Any] | None = None
    ) -> None:
        hook = self._hook(conv)
        if hook is None:
            return
        if hook.gateway:
            # No agent name anywhere on the Gateway.
            data = {"memberType": "agent", "change": change, "id": agent.id, **(extra or {})}
            self._gateway(hook, conv, "MEMBERS_CHANGED", data)
        else:
            self._v2(hook, conv, v2_type, {"agentId": agent.id, "agentName": agent.name, **(extra or {})})

    def _attachment(self, conv: Conversation, att_id: str) -> dict[str, str]:
        att = conv.attachments.get(att_id)
        if att is None:
            return {"id": att_id}
        return {
            "id": att.id,
            "type": att.kind,
            "preSignedUrl": self.state.presigned_url(att),
            "fileName": att.filename,
        }

    def _hook(self, conv: Conversation) -> Webhook | None:
        phase = conv.bot_phase
        if phase is not None and phase.webhook_id in self.state.webhooks:
            return self.state.webhooks[phase.webhook_id]
        return self.state.webhook_of(conv)

    def _send(self, hook: Webhook, conv: Conversation, event_type: str, payload: dict[str, Any]) -> None:
        self.send(Event.build(event_type, hook.uri, payload, conv.id, hook.id))
        phase = conv.bot_phase
        channel_hook = self.state.webhook_of(conv)
        if (
            phase is not None
            and phase.notify_channel_webhook
            and channel_hook is not None
            and channel_hook.id != hook.id
            and channel_hook.gateway == hook.gateway
        ):
            self.send(Event.build(event_type, channel_hook.uri, payload, conv.id, channel_hook.id))

    def _v2(
        self,
        hook: Webhook,
        conv: Conversation,
        event_type: str,
        extra: dict[str, Any],
        message_type: str = "SYSTEM",
        timestamp: int | None = None,
    ) -> None:
        payload: dict[str, Any] = {
            "eventType": event_type,
            "messageType": message_type,
            "conversationId": conv.id,
            **extra,
            "timestamp": timestamp if timestamp is not None else now_ms(),
        }
        self._send(hook, conv, event_type, payload)

    def _gateway(
        self,
        hook: Webhook,
        conv: Conversation,
        event_type: str,
        data: dict[str, Any] | None,
        timestamp: int | None = None,
    ) -> None:
        payload: dict[str, Any] = {
            "eventType": event_type,
            "conversationId": conv.id,
            "timestamp": timestamp if timestamp is not None else now_ms(),
        }
        if data is not None:
            payload["data"] = data
        self._send(hook, conv, event_type, payload)
