"""`make demo`: one whole customer case through the connector, offline, in well under a minute.

The local stack (scripts/local_stack) runs template.yaml against moto and the 8x8 emulator. This script plays
the business (the customer writes through the business API; the business channel reads the case events from
EventBridge) and, through the emulator's control API, the agents' hands. Every step is checked; the first one
that does not happen in time stops the demo with a non-zero exit and says what was missing.
"""

from __future__ import annotations

import argparse
import base64
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from scripts import demo_escalation
from scripts.demo_errors import DemoFailed
from scripts.local_stack import REPO_ROOT
from scripts.local_stack.channel import ChannelEvent
from scripts.local_stack.stack import CONTACT_CENTER_APIS, LocalStack, StackOptions, default_api

STEP_TIMEOUT_S = 10.0
LOG_PATH = REPO_ROOT / ".local" / "demo-functions.log"


class Transcript:
    """Timestamped lines from the three sides, printed as they happen (the channel prints from its thread)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self._lock = threading.Lock()

    def line(self, who: str, text: str) -> None:
        with self._lock:
            print(f"{time.monotonic() - self.started:6.2f}s  {who:<20} {text}", flush=True)

    def heading(self, text: str) -> None:
        with self._lock:
            print(f"\n== {text}", flush=True)

    def channel_event(self, event: ChannelEvent) -> None:
        if event.repeat:  # at-least-once delivery: the channel drops it by its eventId
            self.line("channel <- bus", f"(repeat of {event.detail.get('eventId')}, dropped) {event.describe()}")
        else:
            self.line("channel <- bus", event.describe())


# A 1x1 PNG: the customer's "screenshot".
DEMO_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode()


def wait(what: str, check: Callable[[], Any], timeout: float = STEP_TIMEOUT_S) -> Any:
    """Poll `check` until it returns something truthy; fail the demo with `what` otherwise."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except (AssertionError, KeyError, LookupError) as error:
            value, last_error = None, error
        if value:
            return value
        time.sleep(0.05)
    detail = f" (last check: {last_error})" if last_error else ""
    raise DemoFailed(f"{what} did not happen within {timeout:g}s{detail}")


class Demo:
    def __init__(self, stack: LocalStack, out: Transcript) -> None:
        self.stack = stack
        self.out = out
        self.api = stack.session()
        self.control = requests.Session()
        self.control.trust_env = False
        self.case_id = f"demo-{uuid.uuid4().hex[:8]}"
        self.conversation_id = ""
        assert stack.channel is not None
        self.channel = stack.channel

    # -- the business side ---------------------------------------------------------------------

    def call(self, method: str, path: str, expect: int, body: dict[str, Any] | None = None) -> dict[str, Any]:
        answer = self.api.request(method, f"{self.stack.api_url}{path}", json=body, timeout=15)
        shown = f"{method} {path}"
        if answer.status_code != expect:
            raise DemoFailed(f"{shown} answered {answer.status_code}, expected {expect}: {answer.text[:300]}")
        result: Any = answer.json()
        if not isinstance(result, dict):
            raise DemoFailed(f"{shown} answered {result!r}, expected a JSON object")
        return dict(result)

    def say(self, text: str) -> None:
        self.out.line("customer -> API", f"POST /cases/{self.case_id}/messages {text!r}")
        accepted = self.call("POST", f"/cases/{self.case_id}/messages", 202, {"text": text})
        self.out.line("API -> customer", f"202 accepted, messageId {accepted['messageId'][:8]}...")

    def case(self) -> dict[str, Any]:
        return self.call("GET", f"/cases/{self.case_id}", 200)

    def expect_state(self, state: str, agent_id: str | None = None) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            case = self.case()
            if case["state"] != state or (agent_id is not None and (case.get("agent") or {}).get("id") != agent_id):
                return None
            return case

        who = f" with agent {agent_id}" if agent_id else ""
        case: dict[str, Any] = wait(f"case state '{state}'{who} (GET /cases/{self.case_id})", check)
        agent = (case.get("agent") or {}).get("name")
        queue = (case.get("queue") or {}).get("name")
        self.out.line("API -> customer", f"GET case: state={case['state']} queue={queue} agent={agent}")
        if case["conversationId"] != self.conversation_id:
            raise DemoFailed(f"the case moved to conversation {case['conversationId']} (was {self.conversation_id})")
        return case

    def channel_got(self, detail_type: str, count: int = 1, **detail: str) -> ChannelEvent:
        def matches(event: ChannelEvent) -> bool:
            return all(event.detail.get(k) == v for k, v in detail.items())

        described = f"{detail_type}{' ' + str(detail) if detail else ''}"
        try:
            events = self.channel.wait_for(self.case_id, detail_type, count, timeout=STEP_TIMEOUT_S, where=matches)
        except TimeoutError as error:
            raise DemoFailed(f"the business channel never got event #{count} {described}: {error}") from None
        event = events[count - 1]
        if event.detail.get("conversationId") != self.conversation_id:
            raise DemoFailed(f"{described} came for conversation {event.detail.get('conversationId')}")
        self.out.line("  check", f"ok: the business channel got {described}" + (f" (#{count})" if count > 1 else ""))
        return event

    # -- the agent side (the emulator) ---------------------------------------------------------

    def agent_view(self) -> dict[str, Any]:
        answer = self.control.get(f"{self.stack.control_url}/conversations/{self.conversation_id}", timeout=10)
        answer.raise_for_status()
        view: dict[str, Any] = answer.json()
        return view

    def agent_sees(self, text: str, author: str = "user") -> None:
        def check() -> bool:
            return any(m["text"] == text and m["authorType"] == author for m in self.agent_view()["transcript"])

        wait(f"8x8 delivering {text!r} to the agent", check)
        self.out.line("8x8 agent view", f"the agent sees [{author}] {text!r}")

    def emulator_calls(self, op: str) -> int:
        """How many times the connector called this 8x8 operation so far."""
        answer = self.control.get(f"{self.stack.control_url}/requests", params={"op": op}, timeout=10)
        answer.raise_for_status()
        return int(answer.json()["counts"].get(op, 0))

    def run_timers(self) -> None:
        """The template's scheduled functions (the escalation's timer sweep) once, now, as their rate would."""
        self.stack.run_schedules()

    def agent_action(self, agent_id: str, action: str, body: dict[str, Any] | None = None) -> None:
        answer = self.control.post(f"{self.stack.control_url}/agents/{agent_id}/{action}", json=body or {}, timeout=10)
        if answer.status_code != 200:
            raise DemoFailed(f"agent {agent_id} could not {action}: {answer.status_code} {answer.text[:200]}")

    # -- the case ------------------------------------------------------------------------------

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        self.out.heading(title)
        yield

    def run(self) -> None:
        with self.step("1. The customer asks the bot for a human: the business opens the case"):
            self.out.line(
                "customer -> API",
                f"POST /cases/{self.case_id}/conversation (Jane Doe, order A-1042, 3 messages with the bot)",
            )
            opened = self.call(
                "POST",
                f"/cases/{self.case_id}/conversation",
                201,
                {
                    "customer": {
                        "name": "Jane Doe",
                        "email": "jane.doe@example.com",
                        "customerId": "CUST-0042",
                        "language": "en",
                        "properties": {"plan": "pro", "orderId": "A-1042"},
                    },
                    "history": [
                        {"authorType": "bot", "text": "Hi! I'm the virtual assistant. How can I help?"},
                        {"authorType": "user", "text": "I was charged twice for my subscription."},
                        {"authorType": "bot", "text": "Sorry about that! Let me get you a person."},
                    ],
                },
            )
            self.conversation_id = opened["conversationId"]
            self.out.line(
                "API -> customer", f"201 conversation {self.conversation_id} on 8x8 channel {opened['channelId']}"
            )
            again = self.call("POST", f"/cases/{self.case_id}/conversation", 200, {})
            if again["conversationId"] != self.conversation_id:
                raise DemoFailed("opening the case twice created a second conversation")
            self.out.line("API -> customer", "open again: 200, the same conversation (opened once per case)")
            view = self.agent_view()
            if view["customer"].get("caseId") != self.case_id or view["customer"].get("orderId") != "A-1042":
                raise DemoFailed(f"8x8 did not get the customer data: {view['customer']}")
            history = [m for m in view["transcript"] if m["history"]]
            if len(history) != 3:
                raise DemoFailed(f"8x8 got {len(history)} history messages, expected 3")
            self.out.line("8x8 agent view", f"customer {view['customer']['name']}, caseId {view['customer']['caseId']}")
            for m in history:
                self.out.line("8x8 agent view", f"  history [{m['authorType']}] {m['text']}")

        with self.step("2. 8x8 queues the conversation"):
            self.channel_got("ConversationOpened")
            self.channel_got("Queued", queueId="support")

        with self.step("3. An agent joins"):
            self.channel_got("AgentJoined", agentId="alice")
            self.channel_got("AgentMessage", agentId="alice")
            self.expect_state("with_agent", "alice")

        with self.step("4. Messages both ways"):
            self.say("Yes, order A-1042 was charged twice on the 3rd.")
            self.agent_sees("Yes, order A-1042 was charged twice on the 3rd.")
            self.channel_got("AgentMessage", 2, agentId="alice")

        with self.step("5. The agent transfers the case to Billing"):
            self.out.line("agent alice", "types 'This is one for Billing, transferring you now.' and transfers")
            self.agent_action("alice", "reply", {"text": "This is one for Billing, transferring you now."})
            self.channel_got("AgentMessage", 3, agentId="alice")
            self.agent_action("alice", "transfer", {"queueId": "billing"})
            self.channel_got("Transferred")
            self.channel_got("AgentLeft", agentId="alice")
            self.channel_got("Queued", queueId="billing")

        with self.step("6. A Billing agent joins and sees the whole conversation"):
            self.channel_got("AgentJoined", agentId="bob")
            self.channel_got("AgentMessage", agentId="bob")
            self.expect_state("with_agent", "bob")
            self.say("Great, thank you!")
            self.agent_sees("Great, thank you!")
            self.channel_got("AgentMessage", 2, agentId="bob")

        with self.step("7. The customer leaves"):
            self.out.line("customer -> API", f"DELETE /cases/{self.case_id}/conversation")
            left = self.call("DELETE", f"/cases/{self.case_id}/conversation", 200)
            self.out.line("API -> customer", f"200 state={left['state']}")
            if left["state"] != "closed":
                raise DemoFailed(f"the case is {left['state']} after the customer left, expected closed")
            self.channel_got("CustomerLeft")
            self.channel_got("AgentLeft", agentId="bob")
            wait("8x8 freeing the agent", lambda: self.agent_view()["customerLeft"])
            self.out.line("8x8 agent view", "the customer left; Bob's interaction ended")
            self.expect_state("closed")

        with self.step("8. The customer writes again: the case reopens on the same conversation"):
            self.say("Sorry, one more thing: when will I see the refund?")
            self.channel_got("Queued", 2, queueId="billing")
            self.channel_got("AgentJoined", 2, agentId="bob")
            self.agent_sees("Sorry, one more thing: when will I see the refund?")
            view = self.agent_view()
            if len(view["interactions"]) != 2:
                raise DemoFailed(
                    f"expected a second interaction on the conversation, 8x8 has {len(view['interactions'])}"
                )
            self.out.line(
                "8x8 agent view",
                f"conversation {view['id']}: interaction 2 of 2, {len(view['transcript'])} messages visible to Bob",
            )

        with self.step("9. The agent answers"):
            self.channel_got("AgentMessage", 3, agentId="bob")  # no second greeting: Bob carries on
            self.expect_state("with_agent", "bob")

        if self.stack.options.api == "chat-gateway-v1":
            with self.step("10. Files both ways and typing (Chat Gateway)"):
                self.files_and_typing()
        else:
            self.out.heading("10. Files both ways and typing: Chat Gateway only (Chat API v2 answers 400), skipped")

        with self.step("11. The customer is done"):
            left = self.call("DELETE", f"/cases/{self.case_id}/conversation", 200)
            self.out.line("API -> customer", f"DELETE conversation: 200 state={left['state']}")
            self.channel_got("CustomerLeft", 2)
            self.expect_state("closed")

        demo_escalation.EscalationScene(Demo(self.stack, self.out), Demo(self.stack, self.out)).run(12)

    def files_and_typing(self) -> None:
        """The customer sends a screenshot, the agent types and answers with a file, the business downloads it
        through casebridge."""
        screenshot = DEMO_PNG
        self.out.line("customer -> API", f"POST /cases/{self.case_id}/attachments screenshot.png ({len(screenshot)} B)")
        upload = self.call(
            "POST",
            f"/cases/{self.case_id}/attachments",
            201,
            {"fileName": "screenshot.png", "contentType": "image/png", "size": len(screenshot)},
        )
        put = self.control.put(upload["uploadUrl"], data=screenshot, headers=upload.get("uploadHeaders"), timeout=15)
        if put.status_code not in (200, 204):
            raise DemoFailed(f"the pre-signed upload answered {put.status_code}: {put.text[:200]}")
        self.out.line("customer -> S3", f"PUT pre-signed URL: {put.status_code}")
        accepted = self.call(
            "POST",
            f"/cases/{self.case_id}/messages",
            202,
            {"text": "Here is the error I get.", "attachments": [upload["attachmentId"]]},
        )
        self.out.line("API -> customer", f"202 accepted, messageId {accepted['messageId'][:8]}...")
        wait(
            "8x8 holding the screenshot",
            lambda: any(a["filename"] == "screenshot.png" for a in self.agent_view()["attachments"]),
        )
        self.out.line("8x8 agent view", "the agent sees the customer's screenshot.png")
        self.agent_action("bob", "typing", {"typing": True})
        typing = self.channel_got("AgentTyping", agentId="bob")
        if typing.detail.get("typing") is not True:
            raise DemoFailed(f"AgentTyping said typing={typing.detail.get('typing')!r}")
        receipt = b"%PDF-1.4\n% casebridge demo refund receipt\n"
        self.out.line("agent bob", "replies with refund-receipt.pdf")
        self.agent_action(
            "bob",
            "reply",
            {
                "text": "Here is your refund receipt.",
                "attachments": [
                    {"name": "refund-receipt.pdf", "contentType": "application/pdf", "content": b64encode(receipt)}
                ],
            },
        )
        # Picked by its text: Bob's script may answer the screenshot before or after this reply.
        message = self.channel_got("AgentMessage", agentId="bob", text="Here is your refund receipt.")
        attachment_id = str(message.detail["attachments"][0]["attachmentId"])
        path = f"/cases/{self.case_id}/attachments/{attachment_id}"

        def copied() -> str | None:
            answer = self.api.get(f"{self.stack.api_url}{path}", allow_redirects=False, timeout=15)
            return answer.headers.get("Location") if answer.status_code == 302 else None

        location = str(wait("casebridge copying the agent's file", copied))
        self.out.line("API -> business", f"GET {path}: 302 to a short-lived download URL")
        downloaded = self.control.get(location, timeout=15)
        if downloaded.content != receipt:
            raise DemoFailed("the downloaded file is not the one the agent sent")
        self.out.line(
            "  check", f"ok: the business downloaded refund-receipt.pdf ({len(receipt)} B) through casebridge"
        )

    # -- the end -------------------------------------------------------------------------------

    def print_summary(self) -> None:
        view = self.agent_view()
        self.out.heading("What the agents saw in 8x8 (the conversation's transcript)")
        interactions = {i["id"]: n for n, i in enumerate(view["interactions"], 1)}
        for m in view["transcript"]:
            tag = "history" if m["history"] else f"interaction {interactions.get(m['interactionId'], '?')}"
            who = m["senderId"] if m["authorType"] == "agent" else m["authorType"]
            print(f"  [{tag:<13}] {who:>8}: {m['text']}")
        timeline: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            query = f"?limit=10&after={cursor}" if cursor else "?limit=10"
            page = self.call("GET", f"/cases/{self.case_id}/events{query}", 200)
            if not page["events"]:
                break
            timeline += page["events"]
            cursor = page["next"]
        self.out.heading(f"What the business saw (GET /cases/{self.case_id}/events, {len(timeline)} events)")
        for e in timeline:
            extra = e.get("agentName") or e.get("agentId") or e.get("queueName") or ""
            text = f" {e['text']!r}" if e.get("text") else ""
            print(f"  {e['type']:<18} {extra}{text}")
        problems = self.stack.problems()
        if problems:
            raise DemoFailed(f"background workers reported errors: {problems}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--log", type=Path, default=LOG_PATH, help=f"the functions' log file (default {LOG_PATH})")
    parser.add_argument(
        "--api",
        choices=CONTACT_CENTER_APIS,
        default=default_api(),
        help="the 8x8 API the connector speaks (default: $EIGHTXEIGHT_API, else chat-gateway-v1)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out = Transcript()
    print("casebridge demo: a customer case from the business's chat to 8x8 agents and back, all on this machine")
    print(f"8x8 API: {args.api}")
    options = StackOptions(
        log_path=args.log,
        on_event=out.channel_event,
        api=args.api,
        business_hours=demo_escalation.business_hours(open_now=True),
    )
    try:
        stack = LocalStack(options).start()
    except Exception as error:
        print(f"\nDEMO FAILED: the local stack did not start: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    try:
        out.line(
            "local stack",
            f"API {stack.api_url} | 8x8 emulator {stack.emulator.base_url} | AWS {stack.aws.endpoint_url}",
        )
        demo_escalation.prepare(stack)
        demo = Demo(stack, out)
        demo.run()
        demo.print_summary()
    except DemoFailed as error:
        print(f"\nDEMO FAILED: {error}\n(the functions' logs: {args.log})", file=sys.stderr)
        return 1
    finally:
        stack.stop()
    print(f"\nDemo OK: every step happened, in {time.monotonic() - out.started:.1f}s. Functions' logs: {args.log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
