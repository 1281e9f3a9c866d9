"""What happens around an agent's part of a conversation: the customer going quiet, the Gateway's post-agent
assignment (the bot gets the conversation back), wrap-up codes (ESCALATION.md sections 4-6).

- Customer idle: while an agent has the conversation and the customer has not written for
  `timings.customer_idle` seconds, a Gateway `CONVERSATION_UPDATE {state: "idle"}` (8x8 does not say what
  makes a conversation idle; inactivity is one reading). The customer's next message sends `active`.
- Post-agent assignment: registered once, used by the next end of an agent's part (the agent ends it, a
  script leaves, a wrap-up timer fires; not a transfer, not the customer leaving). From then on the
  conversation's events go to the assignment's webhook (and to the channel's too when
  `notifyChannelWebhookIfExists` is "true"): `MEMBERS_CHANGED agent left`, `CONVERSATION_UPDATE active` with
  assignment `{type: "webhook", id}`, then every `MESSAGE`. Customer messages stay with the bot (no new
  interaction). It finishes with `CONVERSATION_UPDATE idle` when `userTimeoutInMinutes` pass after the bot's
  last message without a user reply, or `maxTotalMinutes` after it began; a PUT/PATCH assignment or the
  customer leaving ends it at once. One "minute" lasts `timings.post_agent_minute` seconds.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from .events import Notifier
from .loop import Scheduler
from .model import Conversation, Interaction, InvalidState, PostAgentAssignment, Validation, ValidationFailed
from .state import CenterState


def wrap_up_code(state: CenterState, queue_id: str, wanted: str | None) -> dict[str, str] | None:
    """The configured code `wanted` names (by id or name) if the queue offers it; ValidationFailed otherwise."""
    if wanted is None or wanted == "":
        return None
    for code in wrap_up_codes(state, queue_id):
        if wanted in (code["id"], code["name"]):
            return code
    raise ValidationFailed(
        [
            Validation(
                "wrapUpCode", wanted, "invalid_wrap_up_code", f"queue {queue_id} offers no wrap-up code {wanted!r}"
            )
        ]
    )


def wrap_up_codes(state: CenterState, queue_id: str) -> list[dict[str, str]]:
    return [
        {"id": c.id, "name": c.name, "shortCode": c.short_code}
        for c in state.config.wrap_up_codes
        if not c.queues or queue_id in c.queues
    ]


class Aftercare:
    def __init__(self, state: CenterState, notify: Notifier, scheduler: Scheduler) -> None:
        self.state = state
        self._notify = notify
        self.scheduler = scheduler

    # -- the customer going quiet ---------------------------------------------------------------

    def arm_customer_idle(self, conv: Conversation, inter: Interaction) -> None:
        conv.customer_activity += 1
        seconds = self.state.config.timings.customer_idle
        if seconds > 0:
            fire = functools.partial(self._customer_idle, conv.id, inter.id, conv.customer_activity)
            self.scheduler.call_later(seconds, fire, background=True)

    def _customer_idle(self, conv_id: str, inter_id: str, activity: int) -> None:
        with self.state.lock:
            conv = self.state.conversations.get(conv_id)
            if conv is None or conv.customer_activity != activity or conv.idle_signalled:
                return
            inter = conv.current
            if inter is None or inter.id != inter_id or inter.assigned_agent is None:
                return
            conv.idle_signalled = True
            self._notify.conversation_update(conv, "idle")

    def customer_wrote(self, conv: Conversation, inter: Interaction) -> None:
        """A customer message on a live interaction: active again if it had gone idle, and the silence restarts."""
        if conv.idle_signalled:
            conv.idle_signalled = False
            self._notify.conversation_update(conv, "active")
        if inter.assigned_agent is not None:
            self.arm_customer_idle(conv, inter)

    def interaction_over(self, conv: Conversation) -> None:
        conv.idle_signalled = False
        conv.customer_activity += 1

    # -- post-agent assignment --------------------------------------------------------------------

    def register(self, conv: Conversation, assignment: PostAgentAssignment) -> None:
        """A second registration replaces the first (the docs do not say; there is no GET/DELETE)."""
        conv.post_agent = assignment

    def agent_part_ended(self, conv: Conversation) -> bool:
        """The agent ended its part: the bot gets the conversation if an assignment waits. Call before the
        agent-left event, so that event goes to the assignment's webhook."""
        phase = conv.post_agent
        if phase is None:
            return False
        conv.post_agent = None
        phase.started = time.time()
        conv.bot_phase = phase
        minute = self.state.config.timings.post_agent_minute
        if phase.max_total_minutes:
            fire = functools.partial(self._finish_if, conv.id, phase, None)
            self.scheduler.call_later(phase.max_total_minutes * minute, fire, background=True)
        self._arm_user_timeout(conv, phase)
        return True

    def _arm_user_timeout(self, conv: Conversation, phase: PostAgentAssignment) -> None:
        phase.generation += 1
        if phase.user_timeout_minutes:
            fire = functools.partial(self._finish_if, conv.id, phase, phase.generation)
            delay = phase.user_timeout_minutes * self.state.config.timings.post_agent_minute
            self.scheduler.call_later(delay, fire, background=True)

    def bot_phase_message(self, conv: Conversation, author_type: str) -> None:
        """A bot message restarts the user's timeout; a user reply stops it until the bot writes again."""
        phase = conv.bot_phase
        if phase is None:
            return
        if author_type == "bot":
            self._arm_user_timeout(conv, phase)
        else:
            phase.generation += 1

    def _finish_if(self, conv_id: str, phase: PostAgentAssignment, generation: int | None) -> None:
        with self.state.lock:
            conv = self.state.conversations.get(conv_id)
            if conv is None or conv.bot_phase is not phase:
                return
            if generation is not None and generation != phase.generation:
                return
            self._notify.conversation_update(conv, "idle")
            conv.bot_phase = None

    def end_bot_phase(self, conv: Conversation) -> None:
        """The conversation goes back to a queue, or the customer left: the bot's part ends without an event."""
        conv.bot_phase = None

    # -- read receipts and thinking ---------------------------------------------------------------

    def agent_read(self, conv: Conversation, agent_id: str, read_at: int) -> bool:
        """The agent read everything up to `read_at`; False (nothing sent) if it had already."""
        if read_at <= conv.agent_read_at:
            return False
        conv.agent_read_at = read_at
        self._notify.read_receipt(conv, agent_id, read_at)
        return True

    def views(self, conv: Conversation) -> dict[str, Any]:
        """What the agent side shows of all this (the control transcript and the desk)."""
        phase = conv.bot_phase or conv.post_agent
        return {
            "postAgentAssignment": None
            if phase is None
            else {
                "webhookId": phase.webhook_id,
                "notifyChannelWebhookIfExists": phase.notify_channel_webhook,
                "maxTotalMinutes": phase.max_total_minutes,
                "userTimeoutInMinutes": phase.user_timeout_minutes,
                "active": conv.bot_phase is not None,
            },
            "readBy": dict(conv.read_by),
            "agentReadAt": conv.agent_read_at or None,
            "thinkingUntil": conv.thinking_until or None,
            "customerIdle": conv.idle_signalled,
        }


def check_open(state: CenterState, queue_id: str) -> None:
    status = state.queues[queue_id].status
    if status != "open":
        raise InvalidState(f"queue {queue_id} is {status}: its agents cannot take conversations")
