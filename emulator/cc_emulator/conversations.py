"""Conversations as the integration and the agents see them: create, message, reassign, leave, read.

`ConversationOps` is one part of `Engine`; it changes the `CenterState`, hands queueing and agent
reactions to the `Router` and reports happenings through the `Notifier`.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from .delivery import now_ms
from .events import Notifier
from .model import (
    MAX_CUSTOMER_PROPS,
    MAX_HISTORY_MESSAGES,
    Channel,
    Conversation,
    Interaction,
    InteractionState,
    Message,
    NotFound,
    Validation,
    ValidationFailed,
    gateway_user,
    iso,
)
from .routing import Router
from .signing import b64url
from .state import CenterState


class ConversationOps(CenterState):
    router: Router
    notify: Notifier

    # -- conversations -----------------------------------------------------------------------

    def list_conversations(self, channel_id: str | None = None, status: str | None = None) -> list[Conversation]:
        convs = self._rows(self.conversations)
        if channel_id:
            convs = [c for c in convs if c.channel_id == channel_id]
        if status and status != "all":
            convs = [c for c in convs if c.status == status]
        return convs

    def _routing_queue(self, channel: Channel, assignment: tuple[str, str] | None) -> tuple[str, str | None]:
        """(queue id, script id) for a Gateway assignment; the channel's queue when there is none."""
        if assignment is None:
            return channel.queue_id, None
        kind, target = assignment
        if kind == "script":
            return self.config.gateway_scripts.get(target, channel.queue_id), target
        if target not in self.queues:
            raise NotFound("Queue", target)
        return target, None

    def create_conversation(
        self,
        channel_id: str,
        customer: dict[str, str],
        history: list[dict[str, Any]],
        additional_properties: list[dict[str, str]] | None = None,
        assignment: tuple[str, str] | None = None,
    ) -> Conversation:
        """History items: {"type" or "authorType": user|bot, "text", "attachments"?, "cards"?}."""
        props = list(additional_properties or [])
        problems = []
        if len(customer) > MAX_CUSTOMER_PROPS or len(props) > MAX_CUSTOMER_PROPS:
            problems.append(
                Validation(
                    "customer",
                    str(max(len(customer), len(props))),
                    "max_properties",
                    f"customer has more than {MAX_CUSTOMER_PROPS} properties",
                )
            )
        if len(history) > MAX_HISTORY_MESSAGES:
            problems.append(
                Validation(
                    "history.messages",
                    str(len(history)),
                    "max_size",
                    f"history has more than {MAX_HISTORY_MESSAGES} messages",
                )
            )
        with self.lock:
            channel = self.channels.get(channel_id)
            if channel is None:
                problems.append(
                    Validation("channelId", channel_id, "invalid_channel", f"Channel ID {channel_id} is invalid.")
                )
            if problems:
                raise ValidationFailed(problems)
            assert channel is not None
            try:
                queue_id, script_id = self._routing_queue(channel, assignment)
            except NotFound as exc:
                raise ValidationFailed(
                    [
                        Validation(
                            "assignment.id", exc.resource_id, "invalid_queue", f"Queue ID {exc.resource_id} is invalid."
                        )
                    ]
                ) from exc
            conv = Conversation(b64url(secrets.token_bytes(16)), channel.id, dict(customer), time.time(), queue_id)
            conv.additional_properties = props
            conv.script_id = script_id
            self.conversations[conv.id] = conv
            self.notify.conversation_update(conv, "created")
            inter = self.router.start_interaction(conv, queue_id)
            for h in history:
                author = str(h.get("authorType") or h.get("type") or "user")
                sender = conv.customer_participant_id if author == "user" else "bot"
                conv.messages.append(
                    Message(
                        self.new_id(),
                        inter.id,
                        author,
                        sender,
                        str(h.get("text") or ""),
                        now_ms(),
                        history=True,
                        cards=list(h.get("cards") or []),
                    )
                )
            self.notify.conversation_update(conv, "active")
            self.router.enqueue(conv, inter)
            return conv

    def post_message(
        self,
        conversation_id: str,
        text: str,
        author_type: str = "user",
        attachments: list[str] | None = None,
        cards: list[dict[str, Any]] | None = None,
        reopen: str | None = None,
    ) -> Message:
        """A user or bot message. On an idle conversation, `reopen` decides: "requeue" (a new
        interaction on the last queue) or "needs_assignment" (stored until PUT/PATCH assigns it);
        None = the Gateway setting for Gateway-dialect conversations, "requeue" otherwise."""
        with self.lock:
            conv = self.get_conversation(conversation_id)
            for att_id in attachments or []:
                if att_id not in conv.attachments:
                    raise ValidationFailed(
                        [Validation("attachments.id", att_id, "invalid_attachment", f"Attachment {att_id} not found.")]
                    )
            if reopen is None:
                reopen = self.config.gateway_reopen if self.gateway_dialect(conv) else "requeue"
            inter = conv.current
            with_bot = inter is None and conv.bot_phase is not None
            # While the bot has it after the agent (post-agent assignment), a message does not reopen.
            reopening = inter is None and reopen == "requeue" and not with_bot
            if reopening:
                # Reopen: a new interaction on the last queue, the next agent sees everything.
                conv.customer_left = False
                inter = self.router.start_interaction(conv, conv.last_queue_id)
            sender = conv.customer_participant_id if author_type == "user" else "bot"
            msg = Message(
                self.new_id(),
                inter.id if inter else ("post-agent" if with_bot else ""),
                author_type,
                sender,
                text,
                now_ms(),
                attachments=list(attachments or []),
                cards=list(cards or []),
            )
            conv.messages.append(msg)
            if author_type == "bot":
                conv.thinking_until = 0
            self.notify.message(conv, msg)
            if with_bot:
                self.router.aftercare.bot_phase_message(conv, author_type)
            if reopening and inter is not None:
                self._claim_waiting_messages(conv, inter)
                self.notify.conversation_update(conv)
                self.router.enqueue(conv, inter)
            elif inter is not None:
                self.router.customer_message(conv, inter, msg)
            return msg

    @staticmethod
    def _claim_waiting_messages(conv: Conversation, inter: Interaction) -> None:
        """Messages stored while idle (needs_assignment) belong to the interaction that serves them."""
        for m in conv.messages:
            if m.interaction_id == "":
                m.interaction_id = inter.id

    def update_conversation(
        self,
        conversation_id: str,
        channel_id: str | None = None,
        customer: dict[str, str] | None = None,
        additional_properties: list[dict[str, str]] | None = None,
        assignment: tuple[str, str] | None = None,
    ) -> Conversation:
        """Gateway PUT/PATCH. An assignment on an idle conversation starts a new interaction there;
        on a waiting one it moves it; while an agent is assigned it only becomes the queue of the
        next reopen (the docs are silent on that case)."""
        with self.lock:
            conv = self.get_conversation(conversation_id)
            if channel_id is not None and channel_id != conv.channel_id:
                self.get_channel(channel_id)
                conv.channel_id = channel_id
            if customer is not None:
                conv.customer = dict(customer)
                conv.additional_properties = list(additional_properties or [])
            if assignment is None:
                self.notify.conversation_update(conv)
                return conv
            channel = self.get_channel(conv.channel_id)
            queue_id, script_id = self._routing_queue(channel, assignment)
            conv.script_id = script_id
            inter = conv.current
            if inter is None:
                conv.customer_left = False
                self.router.aftercare.end_bot_phase(conv)
                inter = self.router.start_interaction(conv, queue_id)
                self._claim_waiting_messages(conv, inter)
                self.notify.conversation_update(conv)
                self.router.enqueue(conv, inter)
            elif inter.state in (InteractionState.QUEUED, InteractionState.OFFERED):
                self.notify.conversation_update(conv)
                self.router.requeue(conv, inter, queue_id)
            else:
                conv.last_queue_id = queue_id
                self.notify.conversation_update(conv)
            return conv

    def customer_leaves(self, conversation_id: str, announce: bool = False) -> None:
        """The customer leaves: the live interaction ends (AGENT_LEFT if an agent had joined).
        `announce` (Gateway) also sends MEMBERS_CHANGED user left."""
        with self.lock:
            conv = self.get_conversation(conversation_id)
            already = conv.customer_left
            conv.customer_left = True
            if announce and not already:
                self.notify.user_left(conv)
            self.router.aftercare.end_bot_phase(conv)
            inter = conv.current
            if inter is not None:
                self.router.end(conv, inter)

    def messages(self, conversation_id: str, interaction_id: str | None = None) -> list[Message]:
        with self.lock:
            conv = self.get_conversation(conversation_id)
            return [m for m in conv.messages if interaction_id is None or m.interaction_id == interaction_id]

    def participants(self, conversation_id: str) -> list[dict[str, Any]]:
        """{id, type, language, removed}; an agent is removed once it is no longer assigned."""
        with self.lock:
            conv = self.get_conversation(conversation_id)
            lang = conv.customer.get("language", "en")
            cur = conv.current
            result: list[dict[str, Any]] = [
                {"id": conv.customer_participant_id, "type": "user", "language": lang, "removed": conv.customer_left}
            ]
            if any(m.author_type == "bot" for m in conv.messages):
                result.append({"id": "bot", "type": "bot", "language": lang, "removed": False})
            seen: set[str] = set()
            for inter in conv.interactions:
                for agent_id in inter.agents:
                    if agent_id not in seen:
                        seen.add(agent_id)
                        removed = cur is None or cur.assigned_agent != agent_id
                        result.append({"id": agent_id, "type": "agent", "language": lang, "removed": removed})
            return result

    def user_typing(self, conversation_id: str, author_type: str) -> None:
        """The integration's user or bot is typing: shown to the agent, kept in the transcript."""
        with self.lock:
            conv = self.get_conversation(conversation_id)
            conv.user_typing.append({"authorType": author_type, "timestamp": now_ms()})

    # -- agents (control) --------------------------------------------------------------------

    def agent_accept(self, agent_id: str, conversation_id: str | None = None) -> Conversation:
        with self.lock:
            return self.router.accept(self.router.agent(agent_id), conversation_id)

    def agent_reply(
        self,
        agent_id: str,
        text: str,
        attachments: list[tuple[str, str, bytes]] | None = None,
        cards: list[dict[str, Any]] | None = None,
    ) -> Message:
        """Attachments as (filename, content type, bytes)."""
        with self.lock:
            return self.router.reply(self.router.agent(agent_id), text, attachments or [], cards or [])

    def agent_typing(self, agent_id: str, typing: bool) -> Conversation:
        with self.lock:
            return self.router.typing(self.router.agent(agent_id), typing)

    def agent_transfer(self, agent_id: str, queue_id: str) -> Conversation:
        with self.lock:
            return self.router.transfer(self.router.agent(agent_id), queue_id)

    def agent_leave(self, agent_id: str, wrap_up_code: str | None = None) -> Conversation:
        """The agent ends the interaction, with a wrap-up code (id or name) its queue offers."""
        with self.lock:
            return self.router.leave(self.router.agent(agent_id), wrap_up_code)

    # -- inspection --------------------------------------------------------------------------

    def transcript(self, conversation_id: str) -> dict[str, Any]:
        """The conversation as an agent sees it: history plus every message, across interactions."""
        with self.lock:
            conv = self.get_conversation(conversation_id)
            return {
                "id": conv.id,
                "channelId": conv.channel_id,
                # What the agent sees: every customer field, Gateway additionalProperties flattened in.
                "customer": {**dict(conv.customer), **{p["key"]: p["value"] for p in conv.additional_properties}},
                "user": gateway_user(conv),
                "status": conv.status,
                "customerLeft": conv.customer_left,
                "lastQueueId": conv.last_queue_id,
                "state": conv.gateway_state,
                "assignment": conv.assignment(),
                "userTyping": list(conv.user_typing),
                "attachments": [
                    {"id": a.id, "filename": a.filename, "contentType": a.content_type, "size": len(a.data)}
                    for a in conv.attachments.values()
                ],
                "interactions": [
                    {
                        "id": i.id,
                        "queueId": i.queue_id,
                        "state": i.state,
                        "agentId": i.agent_id,
                        "agents": list(i.agents),
                        "transfers": list(i.transfers),
                        "startTime": iso(i.start),
                        "endTime": iso(i.end) if i.end else None,
                        "wrapUpCode": dict(i.wrap_up_code) if i.wrap_up_code else None,
                    }
                    for i in conv.interactions
                ],
                **self.router.aftercare.views(conv),
                "transcript": [
                    {
                        "id": m.id,
                        "interactionId": m.interaction_id,
                        "authorType": m.author_type,
                        "senderId": m.sender_id,
                        "text": m.text,
                        "timestamp": m.timestamp,
                        "history": m.history,
                        "attachments": list(m.attachments),
                        "cards": list(m.cards),
                    }
                    for m in conv.messages
                ],
            }
