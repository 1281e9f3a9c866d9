"""The demo's escalation scene (docs/escalation.md): availability refused outside hours → escalation during hours →
wait updates → the agent ends with a wrap-up code → handed back → transcript downloaded.

It plays on the channel's queue (Support), the one queue both 8x8 APIs can open on. Its business hours (the SSM
document) first open it only tomorrow, then, as if the clock had moved on, all week: Powertools caches the
document for a minute, so the demo clears that cache where a deployed stack would wait. Alice signs in at her
desk (her hands are the demo's from then on) and is busy with another customer, so the case waits. The timer
sweep (EventBridge, every minute) is run by hand where its work is due. Each step is checked.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities import parameters

from scripts.demo_errors import DemoFailed
from scripts.local_stack.stack import LocalStack

if TYPE_CHECKING:
    from scripts.demo import Demo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
QUEUE, AGENT = "support", "alice"


def business_hours(open_now: bool) -> dict[str, Any]:
    """Support all week, or only tomorrow 09:00-17:00 (UTC): closed whenever the demo runs."""
    if open_now:
        weekly = {day: [["00:00", "24:00"]] for day in DAYS}
    else:
        weekly = {DAYS[(datetime.now(UTC) + timedelta(days=1)).weekday()]: [["09:00", "17:00"]]}
    return {"queues": {QUEUE: {"timeZone": "UTC", "weekly": weekly}}}


def set_hours(stack: LocalStack, open_now: bool) -> None:
    """A new hours document in the stack's parameter (LocalStack puts the first one, StackOptions.business_hours)."""
    name = stack.template.parameter_values["BusinessHoursParameterName"]
    document = json.dumps(business_hours(open_now))
    stack.aws.client("ssm").put_parameter(Name=name, Value=document, Type="String", Overwrite=True)
    parameters.clear_caches()  # type: ignore[no-untyped-call]  # the minute a deployed stack would wait


def prepare(stack: LocalStack) -> None:
    """Before anything is played (the stack started with `business_hours(open_now=True)`): the emulator setting the
    scene shows."""
    # Not 8x8's behaviour (no webhook carries a wrap-up code, ESCALATION.md §6): the emulator adds the agent's
    # code to its agent-left event, so casebridge's HandedBack can show it.
    answer = stack.session().post(f"{stack.control_url}/settings", json={"wrapUpCodeOnWebhook": True}, timeout=10)
    answer.raise_for_status()


def week_text(hours: dict[str, Any]) -> str:
    days = ", ".join(
        f"{day.capitalize()} {' '.join(f'{start}-{end}' for start, end in spans)}"
        for day, spans in hours["weekly"].items()
        if spans
    )
    return f"{days} ({hours['timeZone']})"


class EscalationScene:
    def __init__(self, demo: Demo, first: Demo) -> None:
        """`demo` plays the scene's case; `first` is another customer who keeps Alice busy."""
        self.demo = demo
        self.first = first
        self.out = demo.out

    def run(self, number: int) -> None:
        with self.demo.step(f"{number}. Outside hours: the bot asks before escalating, and keeps the customer"):
            self.refused_outside_hours()
        with self.demo.step(f"{number + 1}. During hours: escalated to Support, where Alice is busy"):
            self.escalated_while_busy()
        with self.demo.step(f"{number + 2}. While queued: wait updates"):
            self.wait_updates()
        with self.demo.step(f"{number + 3}. Alice takes the case and ends it with a wrap-up code"):
            self.agent_ends_with_code()
        with self.demo.step(f"{number + 4}. Handed back to the bot; the transcript is downloaded"):
            self.handed_back_and_transcript()

    # -- the steps ----------------------------------------------------------------------------------

    def availability(self) -> dict[str, Any]:
        found = self.demo.call("GET", f"/queues/{QUEUE}/availability", 200)
        shown = {k: found.get(k) for k in ("reason", "agentsAvailable", "waiting", "estimatedWaitSeconds")}
        self.out.line("API -> bot", f"GET /queues/{QUEUE}/availability: {shown}")
        return found

    def refused_outside_hours(self) -> None:
        set_hours(self.demo.stack, open_now=False)
        self.out.line("business hours", "Support opens tomorrow 09:00-17:00 UTC")
        found = self.availability()
        if found["reason"] != "closed" or found["open"] is not False:
            raise DemoFailed(f"Support should be closed by its hours, availability says {found}")
        self.out.line("  check", f"ok: closed; the answer carries the hours: {week_text(found['hours'])}")
        before = self.demo.emulator_calls("create_conversation")
        url = f"{self.demo.stack.api_url}/cases/{self.demo.case_id}/conversation"
        answer = self.demo.api.post(url, json={"whenUnavailable": "refuse"}, timeout=15)
        refused = answer.json()
        if answer.status_code != 409 or refused["error"]["code"] != "QueueUnavailable":
            raise DemoFailed(f"the open outside hours answered {answer.status_code} {answer.text[:300]}")
        self.out.line("API -> bot", f"POST conversation (whenUnavailable refuse): 409 {refused['error']['code']}")
        if self.demo.emulator_calls("create_conversation") != before:
            raise DemoFailed("a refused open still called 8x8")
        self.out.line("  check", "ok: no 8x8 call; the bot keeps the customer")

    def escalated_while_busy(self) -> None:
        set_hours(self.demo.stack, open_now=True)
        self.out.line("business hours", "later: Support is open")
        first = self.first
        desk = f"{first.stack.emulator.desk_url}/api/agents/{AGENT}"
        first.control.post(f"{desk}/signin", timeout=10).raise_for_status()
        self.out.line("agent alice", "signs in at her desk: from now on she accepts and ends conversations herself")
        opened = first.call("POST", f"/cases/{first.case_id}/conversation", 201, {})
        first.conversation_id = opened["conversationId"]
        first.channel_got("Queued", queueId=QUEUE)
        first.agent_action(AGENT, "accept", {"conversationId": first.conversation_id})
        first.channel_got("AgentJoined", agentId=AGENT)
        self.out.line("agent alice", f"takes another customer's case {first.case_id}")
        found = self.availability()
        if found["reason"] != "open":
            raise DemoFailed(f"Support should be open, availability says {found}")
        demo = self.demo
        body = {
            "customer": {"name": "Vic Example", "email": "vic@example.com"},
            "whenUnavailable": "refuse",
            "onQueueTimeout": "handback",
        }
        opened = demo.call("POST", f"/cases/{demo.case_id}/conversation", 201, body)
        demo.conversation_id = opened["conversationId"]
        self.out.line("API -> bot", f"201 conversation {demo.conversation_id}: escalated during hours")
        demo.channel_got("Queued", queueId=QUEUE)
        demo.say("I need help with my order.")

    def wait_updates(self) -> None:
        demo = self.demo
        demo.run_timers()
        update = demo.channel_got("WaitUpdate", queueId=QUEUE)
        d = update.detail
        figures = f"waiting={d.get('waiting')} estimatedWaitSeconds={d.get('estimatedWaitSeconds')}"
        # The figures are Real-time Metrics' (refreshed every 5 s, cached as long by casebridge): a moment old.
        self.out.line("  check", f"ok: WaitUpdate {figures} (Real-time Metrics, at most 5 s old)")

    def agent_ends_with_code(self) -> None:
        first, demo = self.first, self.demo
        first.agent_action(AGENT, "leave", {"wrapUpCode": "Resolved"})
        first.channel_got("AgentLeft", agentId=AGENT)
        self.out.line("agent alice", "ends the other case (wrap-up code 'Resolved') and takes this one")
        demo.agent_action(AGENT, "accept", {"conversationId": demo.conversation_id})
        demo.channel_got("AgentJoined", agentId=AGENT)
        demo.agent_sees("I need help with my order.")
        demo.agent_action(AGENT, "reply", {"text": "Your order is on its way, Vic."})
        demo.channel_got("AgentMessage", agentId=AGENT)
        demo.agent_action(AGENT, "leave", {"wrapUpCode": "Refund issued"})
        self.out.line("agent alice", "ends the interaction with wrap-up code 'Refund issued'")
        demo.channel_got("AgentLeft", agentId=AGENT)

    def handed_back_and_transcript(self) -> None:
        demo = self.demo
        handed = demo.channel_got("HandedBack")
        if handed.detail.get("reason") != "agent-ended" or handed.detail.get("wrapUpCode") != "Refund issued":
            raise DemoFailed(f"HandedBack said {handed.detail}")
        self.out.line("  check", f"ok: HandedBack reason=agent-ended wrapUpCode={handed.detail.get('wrapUpCode')!r}")
        path = f"/cases/{demo.case_id}/transcript"
        demo.run_timers()  # the sweep writes the transcript of a case handed back
        demo.channel_got("TranscriptReady")
        transcript = demo.call("GET", path, 200)
        codes = [i.get("wrapUpCode") for i in transcript["interactions"]]
        texts = [m.get("text") for m in transcript["messages"]]
        if codes != ["Refund issued"] or "Your order is on its way, Vic." not in texts:
            raise DemoFailed(f"the transcript has wrap-up codes {codes} and messages {texts}")
        text = demo.api.get(f"{demo.stack.api_url}{path}?format=text", timeout=15)
        if text.status_code != 200 or "Your order is on its way" not in text.text or "Refund issued" not in text.text:
            raise DemoFailed(f"the text transcript answered {text.status_code}: {text.text[:300]}")
        self.out.line("API -> business", f"GET {path}: {len(json.dumps(transcript))} bytes of JSON; as text:")
        for line in text.text.strip().splitlines():
            print(f"    {line}")
