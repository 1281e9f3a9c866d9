"""The routing simulation: queues, offers, joins, scripted agents, transfers, leaves, agent actions.

`Router` works on the `CenterState` under its lock and reports what happens through a `Notifier`,
which renders each happening in the receiving webhook's dialect. It knows nothing of the engine.
"""

from __future__ import annotations

import functools
import secrets
import time
from typing import Any

from .aftercare import Aftercare, check_open, wrap_up_code, wrap_up_codes
from .config import AgentConfig
from .delivery import now_ms
from .events import Notifier
from .loop import Scheduler
from .metrics import RealtimeMetrics
from .model import (
    Agent,
    AgentState,
    Attachment,
    Conversation,
    Interaction,
    InteractionState,
    InvalidState,
    Message,
    NotFound,
)
from .state import CenterState


class Router:
    def __init__(self, state: CenterState, notify: Notifier) -> None:
        self.state = state
        self._notify = notify
        self.scheduler = Scheduler()
        self.metrics = RealtimeMetrics(state)
        self.aftercare = Aftercare(state, notify, self.scheduler)

    # -- topology ----------------------------------------------------------------------------

    def add_agent(self, cfg: AgentConfig) -> Agent:
        e = self.state
        for qid in cfg.queues:
            if qid not in e.queues:
                raise ValueError(f"agent {cfg.id} references unknown queue {qid}")
        agent = Agent(cfg.id, cfg.name, list(cfg.queues), cfg.mode, cfg.script)
        e.agents[cfg.id] = agent
        for qid in agent.queues:
            self.dispatch(qid)
        return agent

    def set_available(self, agent: Agent, available: bool) -> None:
        agent.available = available
        if available:
            for qid in agent.queues:
                self.dispatch(qid)

    # -- interactions ------------------------------------------------------------------------

    def start_interaction(self, conv: Conversation, queue_id: str) -> Interaction:
        """A new interaction on `queue_id`, not yet waiting (call `enqueue` once messages are in)."""
        inter = Interaction(
            f"int-{int(time.time() * 1000):x}-{secrets.token_hex(8)}-chat-00-{self.state.config.tenant_id}",
            queue_id,
            time.time(),
        )
        conv.interactions.append(inter)
        conv.last_queue_id = queue_id
        return inter

    def enqueue(self, conv: Conversation, inter: Interaction, queue_id: str | None = None) -> None:
        """Wait in the queue (QUEUED event), then offer to a free scripted agent."""
        qid = queue_id or inter.queue_id
        inter.enqueue(qid)
        conv.last_queue_id = qid
        queue = self.state.queues[qid]
        queue.waiting.append(conv.id)
        self._notify.queued(conv, queue)
        self.dispatch(qid)

    def requeue(self, conv: Conversation, inter: Interaction, queue_id: str) -> None:
        """Move a waiting interaction to another queue (a Gateway assignment change while queued)."""
        self._unqueue(conv, inter)
        self.metrics.wait_ended(inter.queue_id, inter.queued_at, time.time())
        self.enqueue(conv, inter, queue_id)

    def _unqueue(self, conv: Conversation, inter: Interaction) -> None:
        queue = self.state.queues[inter.queue_id]
        if conv.id in queue.waiting:
            queue.waiting.remove(conv.id)
        if inter.state == InteractionState.OFFERED and inter.agent_id:
            agent = self.state.agents[inter.agent_id]
            inter.withdraw_offer()
            self._free_agent(agent)

    def end(self, conv: Conversation, inter: Interaction) -> None:
        """End the interaction whatever its state (the customer left); AGENT_LEFT if one had joined."""
        agent_id = inter.assigned_agent
        self.aftercare.interaction_over(conv)
        if agent_id is None:
            self._unqueue(conv, inter)
            inter.finish(time.time())
            self.metrics.wait_ended(inter.queue_id, inter.queued_at, time.time())
        else:
            agent = self.state.agents[agent_id]
            self._finish(inter)
            self._notify.agent_left(conv, agent)
            self._free_agent(agent)
        self._notify.conversation_update(conv)

    def _finish(self, inter: Interaction) -> None:
        inter.finish(time.time())
        if inter.assigned_at is not None:
            self.metrics.handling_ended(inter.queue_id, inter.assigned_at, time.time())

    def customer_message(self, conv: Conversation, inter: Interaction, msg: Message) -> None:
        """A user message on a live interaction: the assigned scripted agent reacts."""
        agent_id = inter.assigned_agent
        self.aftercare.customer_wrote(conv, inter)
        if agent_id is not None:
            self._schedule_reaction(agent_id, conv.id, inter.id, msg.text)

    # -- dispatch ----------------------------------------------------------------------------

    def dispatch(self, queue_id: str) -> None:
        """Offer waiting conversations to free scripted agents; manual agents accept via control."""
        e = self.state
        queue = e.queues[queue_id]
        if queue.status != "open":
            return  # its agents are logged out or on break
        for conv_id in list(queue.waiting):
            agent = next(
                (a for a in e.agents.values() if queue_id in a.queues and a.free and a.mode == "script"),
                None,
            )
            if agent is None:
                return
            conv = e.conversations[conv_id]
            inter = conv.current
            assert inter is not None
            queue.waiting.remove(conv_id)
            inter.offer(agent.id)
            agent.reserve(conv_id)
            self.scheduler.call_later(
                e.config.timings.accept_delay, functools.partial(self._accept_offer, agent, conv, inter)
            )

    def _accept_offer(self, agent: Agent, conv: Conversation, inter: Interaction) -> None:
        with self.state.lock:
            if inter.state != InteractionState.OFFERED or inter.agent_id != agent.id or conv.current is not inter:
                return
            self._join(agent, conv, inter)

    def _join(self, agent: Agent, conv: Conversation, inter: Interaction) -> None:
        inter.assign(agent.id)
        agent.engage(conv.id)
        self.metrics.wait_ended(inter.queue_id, inter.queued_at, time.time())
        self._notify.agent_joined(conv, agent)
        self.aftercare.arm_customer_idle(conv, inter)
        if agent.mode != "script":
            return
        self._arm_wrap_up(agent, conv, inter)
        # A person greets a customer once: back in the same conversation (a reopen), they just carry on.
        greeted = any(m.author_type == "agent" and m.sender_id == agent.id for m in conv.messages)
        if agent.script.greeting and not greeted:
            self._reply(agent, conv, inter, agent.script.greeting)
        # Customer messages posted while queued get one answer, like a human catching up.
        pending = [
            m for m in conv.messages if m.interaction_id == inter.id and not m.history and m.author_type == "user"
        ]
        if pending:
            self._schedule_reaction(agent.id, conv.id, inter.id, pending[-1].text)

    # -- scripted agents ---------------------------------------------------------------------

    def _schedule_reaction(self, agent_id: str, conv_id: str, inter_id: str, text: str) -> None:
        agent = self.state.agents[agent_id]
        if agent.mode != "script":
            return
        conv = self.state.conversations[conv_id]
        inter = conv.current
        assert inter is not None
        self._arm_wrap_up(agent, conv, inter)
        if agent.script.typing and agent.script.kind != "silent" and not agent.typing:
            self._set_typing(agent, conv, True)
        self.scheduler.call_later(
            self.state.config.timings.reply_delay, functools.partial(self._react, agent_id, conv_id, inter_id, text)
        )

    def _react(self, agent_id: str, conv_id: str, inter_id: str, text: str) -> None:
        e = self.state
        with e.lock:
            agent = e.agents.get(agent_id)
            conv = e.conversations.get(conv_id)
            if agent is None or conv is None:
                return
            inter = conv.current
            if inter is None or inter.id != inter_id or inter.assigned_agent != agent_id:
                return
            if agent.typing:
                self._set_typing(agent, conv, False)
            self.aftercare.agent_read(conv, agent.id, now_ms())
            script = agent.script
            agent.handled += 1
            if script.transfer_to and script.transfer_after and agent.handled >= script.transfer_after:
                self._transfer(agent, conv, inter, script.transfer_to)
            elif script.leave_after and agent.handled >= script.leave_after:
                if script.farewell:
                    self._reply(agent, conv, inter, script.farewell)
                self._leave(agent, conv, inter)
            elif script.kind == "auto_reply":
                atts = [e.add_attachment(conv, *spec, author_type="agent") for spec in script.attachment_specs()]
                self._reply(agent, conv, inter, script.reply_text, atts, list(script.cards))
            elif script.kind == "echo":
                self._reply(agent, conv, inter, f"{script.echo_prefix}{text}")

    def _wrap_up_after(self, agent: Agent) -> float:
        idle = agent.script.wrap_up_idle
        return self.state.config.timings.agent_wrap_up_idle if idle is None else idle

    def _arm_wrap_up(self, agent: Agent, conv: Conversation, inter: Interaction) -> None:
        """A scripted agent leaves after this long without a message in the conversation (0 = never)."""
        agent.activity += 1
        idle = self._wrap_up_after(agent)
        if agent.mode != "script" or idle <= 0:
            return
        self.scheduler.call_later(
            idle, functools.partial(self._wrap_up, agent.id, conv.id, inter.id, agent.activity), background=True
        )

    def _wrap_up(self, agent_id: str, conv_id: str, inter_id: str, activity: int) -> None:
        e = self.state
        with e.lock:
            agent = e.agents.get(agent_id)
            conv = e.conversations.get(conv_id)
            if agent is None or conv is None or agent.activity != activity:
                return
            inter = conv.current
            if inter is None or inter.id != inter_id or inter.assigned_agent != agent_id:
                return
            self._leave(agent, conv, inter)

    # -- agent actions -----------------------------------------------------------------------

    def _reply(
        self,
        agent: Agent,
        conv: Conversation,
        inter: Interaction,
        text: str,
        attachments: list[Attachment] | None = None,
        cards: list[dict[str, Any]] | None = None,
    ) -> Message:
        msg = Message(
            self.state.new_id(),
            inter.id,
            "agent",
            agent.id,
            text,
            now_ms(),
            attachments=[a.id for a in attachments or []],
            cards=list(cards or []),
        )
        conv.messages.append(msg)
        self._notify.message(conv, msg, agent)
        if agent.mode == "script":
            self._arm_wrap_up(agent, conv, inter)
        return msg

    def _set_typing(self, agent: Agent, conv: Conversation, typing: bool) -> None:
        agent.typing = typing
        self._notify.typing(conv, agent, typing)

    def _transfer(self, agent: Agent, conv: Conversation, inter: Interaction, queue_id: str) -> None:
        e = self.state
        if queue_id not in e.queues:
            raise NotFound("Queue", queue_id)
        inter.transfers.append({"from": inter.queue_id, "to": queue_id, "agentId": agent.id})
        if inter.assigned_at is not None:
            self.metrics.handling_ended(inter.queue_id, inter.assigned_at, time.time())
        self.aftercare.interaction_over(conv)
        self._notify.transfer(conv)
        self._notify.agent_left(conv, agent)
        self._free_agent(agent, dispatch=False)
        self.enqueue(conv, inter, queue_id)
        for qid in agent.queues:
            self.dispatch(qid)

    def _leave(self, agent: Agent, conv: Conversation, inter: Interaction, code: dict[str, str] | None = None) -> None:
        """The agent ends its part, with a wrap-up code (a scripted agent uses its script's)."""
        if code is None and agent.mode == "script":
            offered = {c["name"]: c for c in wrap_up_codes(self.state, inter.queue_id)}
            code = next((c for c in offered.values() if agent.script.wrap_up_code in (c["id"], c["name"])), None)
        inter.wrap_up_code = code
        self._finish(inter)
        self.aftercare.interaction_over(conv)
        # Before the agent-left event, so that it goes to the post-agent assignment's webhook.
        self.aftercare.agent_part_ended(conv)
        self._notify.agent_left(conv, agent, code)
        self._free_agent(agent)
        self._notify.conversation_update(conv)

    def _free_agent(self, agent: Agent, dispatch: bool = True) -> None:
        if agent.typing and agent.conversation_id in self.state.conversations:
            self._set_typing(agent, self.state.conversations[agent.conversation_id], False)
        agent.release()
        if dispatch:
            for qid in agent.queues:
                self.dispatch(qid)

    def resume_script(self, agent: Agent) -> None:
        """The agent follows its script again (a desk sign-in ended): an idle wrap-up ends the conversation it
        holds, if any, and it takes waiting conversations from its queues."""
        if agent.mode != "script":
            return
        if agent.state == AgentState.HANDLING and agent.conversation_id in self.state.conversations:
            conv = self.state.conversations[agent.conversation_id]
            if conv.current is not None and conv.current.assigned_agent == agent.id:
                self._arm_wrap_up(agent, conv, conv.current)
        for qid in agent.queues:
            self.dispatch(qid)

    # -- control: manual actions -------------------------------------------------------------

    def agent(self, agent_id: str) -> Agent:
        agent = self.state.agents.get(agent_id)
        if agent is None:
            raise NotFound("Agent", agent_id)
        return agent

    def assigned(self, agent: Agent) -> tuple[Conversation, Interaction]:
        if agent.conversation_id is None:
            raise InvalidState(f"agent {agent.id} is not handling a conversation")
        conv = self.state.conversations[agent.conversation_id]
        inter = conv.current
        if inter is None or inter.assigned_agent != agent.id:
            raise InvalidState(f"agent {agent.id} has not joined conversation {conv.id}")
        return conv, inter

    def accept(self, agent: Agent, conversation_id: str | None) -> Conversation:
        e = self.state
        if agent.state != AgentState.FREE:
            raise InvalidState(f"agent {agent.id} is busy with {agent.conversation_id}")
        candidates = [cid for qid in agent.queues if e.queues[qid].status == "open" for cid in e.queues[qid].waiting]
        if conversation_id is not None:
            waiting_in = [qid for qid in agent.queues if conversation_id in e.queues[qid].waiting]
            for qid in waiting_in:
                check_open(e, qid)
            if conversation_id not in candidates:
                raise InvalidState(f"conversation {conversation_id} is not waiting in agent {agent.id}'s queues")
            target = conversation_id
        elif candidates:
            target = candidates[0]
        else:
            raise InvalidState(f"nothing waiting in queues {agent.queues}")
        conv = e.conversations[target]
        inter = conv.current
        assert inter is not None
        self._unqueue(conv, inter)
        self._join(agent, conv, inter)
        return conv

    def reply(
        self, agent: Agent, text: str, attachments: list[tuple[str, str, bytes]], cards: list[dict[str, Any]]
    ) -> Message:
        conv, inter = self.assigned(agent)
        if agent.typing:
            self._set_typing(agent, conv, False)
        atts = [self.state.add_attachment(conv, *spec, author_type="agent") for spec in attachments]
        return self._reply(agent, conv, inter, text, atts, cards)

    def typing(self, agent: Agent, typing: bool) -> Conversation:
        conv, _ = self.assigned(agent)
        self._set_typing(agent, conv, typing)
        return conv

    def transfer(self, agent: Agent, queue_id: str) -> Conversation:
        if queue_id not in self.state.queues:
            raise NotFound("Queue", queue_id)
        conv, inter = self.assigned(agent)
        self._transfer(agent, conv, inter, queue_id)
        return conv

    def leave(self, agent: Agent, wrap_up: str | None = None) -> Conversation:
        conv, inter = self.assigned(agent)
        self._leave(agent, conv, inter, wrap_up_code(self.state, inter.queue_id, wrap_up))
        return conv

    def read(self, agent: Agent, read_at: int | None) -> Conversation:
        """The agent read the conversation up to `read_at` (default now)."""
        conv, _ = self.assigned(agent)
        self.aftercare.agent_read(conv, agent.id, read_at or now_ms())
        return conv
