"""A hypothesis state machine of the case lifecycle against the real handlers, moto and the emulator, checked
against a simple model: no accepted message lost or sent twice, one conversation per case, no conversation
on two cases, state never backwards. Profile: guarantees-fast in `make test`, GUARANTEES_PROFILE=guarantees-long
for a longer run."""
# ruff: noqa: PLC0415 - imports that must wait for moto, the environment or sys.path

from __future__ import annotations

import contextlib
import json
import os
import threading
import uuid
from collections import Counter
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from casebridge.services import get_services
from cc_emulator.engine import InvalidState
from tests.guarantees.cb_guarantees_harness import Harness, both_apis

pytestmark = both_apis

CASES = ["c0", "c1", "c2"]


def build_machine(h: Harness) -> type[RuleBasedStateMachine]:
    from cc_emulator import AgentConfig, ScriptConfig

    class CaseLifecycle(RuleBasedStateMachine):
        @initialize()
        def fresh(self) -> None:
            self.prefix = uuid.uuid4().hex[:6]
            self.accepted: dict[str, list[str]] = {c: [] for c in CASES}
            self.message_ids: dict[str, list[tuple[str, str]]] = {c: [] for c in CASES}
            self.state_at: dict[str, int] = {}
            self.opened_with_data: set[str] = set()
            self.n = 0
            self.replays = 0
            for i in range(2):  # agents that end the interaction after two messages: AGENT_LEFT, then reopen
                h.engine.add_agent(
                    AgentConfig(f"ag-{self.prefix}-{i}", f"Agent {i}", ["101"], script=ScriptConfig(leave_after=2))
                )

        def cid(self, case: str) -> str:
            return f"{self.prefix}-{case}"

        def open_refused(self, case: str) -> bool:
            """Opening with customer data a case that a message opened first: 8x8 must get the data (Gateway:
            200, the user is updated) or the answer says it cannot (v2: 409), never a silent 200."""
            view = h.get_case(self.cid(case))
            opened_bare = bool(view and view["conversationId"]) and case not in self.opened_with_data
            if not opened_bare or get_services().settings.contact_center_api != "chat-api-v2":
                self.opened_with_data.add(case)
                return False
            return True

        @rule(case=st.sampled_from(CASES))
        def open_conversation(self, case: str) -> None:
            refused = self.open_refused(case)
            answer = h.open_case(self.cid(case))
            assert answer["statusCode"] in ((409,) if refused else (200, 201)), answer

        @rule(case=st.sampled_from(CASES))
        def message(self, case: str) -> None:
            self.n += 1
            text = f"{self.cid(case)} m{self.n}"
            client_id = f"k{self.n}"
            accepted = h.post_message(self.cid(case), text, client_id=client_id)
            self.accepted[case].append(text)
            self.message_ids[case].append((accepted["messageId"], text))

        @rule()
        def deliver_a_batch(self) -> None:
            h.drain(max_batches=1, timeout=20)

        @rule()
        def deliver_everything(self) -> None:
            h.drain(timeout=20)

        @rule(case=st.sampled_from(CASES))
        def customer_leaves(self, case: str) -> None:
            answer = h.leave_case(self.cid(case))
            conv = h.case_conversation(self.cid(case))
            assert answer["statusCode"] in ((200,) if conv else (404, 409)), answer

        @rule(case=st.sampled_from(CASES))
        def agent_leaves(self, case: str) -> None:
            conv = h.case_conversation(self.cid(case))
            with h.engine.lock:
                agent = next((a for a in h.engine.agents.values() if conv and a.conversation_id == conv), None)
            if agent is not None:
                # Assigned but not joined yet (the accept delay): nothing to leave.
                with contextlib.suppress(InvalidState):
                    h.engine.agent_leave(agent.id)

        @rule(case=st.sampled_from(CASES), data=st.data())
        def queue_redelivers_a_message(self, case: str, data: st.DataObject) -> None:
            pick = data.draw(st.integers(0, 1000))  # drawn first: what is drawn must not depend on timing
            if not self.message_ids[case]:
                return
            message_id, text = self.message_ids[case][pick % len(self.message_ids[case])]
            body = {
                "caseId": self.cid(case),
                "messageId": message_id,
                "text": text,
                "authorType": "user",
                "acceptedAt": 1,
            }
            h.sqs.send_message(
                QueueUrl=h.resources.queue_url,
                MessageBody=json.dumps(body),
                MessageGroupId=self.cid(case),
                MessageDeduplicationId=str(uuid.uuid4()),
            )

        @rule(data=st.data())
        def eight_by_eight_redelivers_an_event(self, data: st.DataObject) -> None:
            pick = data.draw(st.integers(0, 1000))  # drawn first: which events arrived depends on timing
            done = [r for r in h.bridge.requests if r.status == 200 and b"WEB_HOOK_VERIFY" not in r.body]
            if not done:
                return
            request = done[-1 - pick % min(20, len(done))]
            event_id = request.headers["x-8x8-event-id"]

            def copies() -> int:
                return sum(1 for i in h.table_items() if i.get("eventId") == event_id and i["sk"].startswith("EVENT#"))

            before = copies()
            answer = h.bridge.call(request.headers, request.body)
            assert answer["statusCode"] == 200 and json.loads(answer["body"])["status"] == "duplicate", answer
            # Recorded once (timeline kinds), or kept under its receipt only (Gateway echoes and state updates).
            assert copies() == before <= 1
            self.replays += 1

        @rule(case=st.sampled_from(CASES))
        def concurrent_opens(self, case: str) -> None:
            refused = self.open_refused(case)
            answers: list[dict[str, Any]] = []
            threads = [
                threading.Thread(target=lambda n=n: answers.append(h.open_case(self.cid(case), copy=f"-sm{n}")))
                for n in range(3)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(20)
            expected = ([409, 409, 409],) if refused else ([200, 200, 200], [200, 200, 201])
            assert sorted(a["statusCode"] for a in answers) in expected, answers

        @invariant()
        def one_conversation_per_case_and_state_never_backwards(self) -> None:
            if not hasattr(self, "prefix"):
                return
            for case in CASES:
                conversations = h.conversations_for_case(self.cid(case))
                assert len(conversations) <= 1, conversations
                view = h.get_case(self.cid(case))
                if view is not None:
                    assert view["conversationId"] in (None, *conversations)
                    at = view["stateChangedAt"] or 0
                    assert at >= self.state_at.get(case, 0), "state moved backwards"
                    self.state_at[case] = at

        def teardown(self) -> None:
            if not hasattr(self, "prefix"):
                return
            h.drain(timeout=30)
            owners: Counter[str] = Counter()
            for item in h.table_items():
                if item["sk"] == "CONVERSATION" and item["caseId"].startswith(self.prefix):
                    owners[item["pk"]] += 1
            assert all(n == 1 for n in owners.values())  # no conversation on two cases
            for case in CASES:
                conv = h.case_conversation(self.cid(case))
                sent = h.transcript_texts(conv) if conv else []
                assert sent == self.accepted[case], (case, sent, self.accepted[case])  # none lost, none twice
            for agent_id in [a for a in h.engine.agents if a.startswith(f"ag-{self.prefix}")]:
                h.engine.set_agent_available(agent_id, False)

    return CaseLifecycle


def test_case_lifecycle_model(harness: Harness) -> None:
    profile = os.environ.get("GUARANTEES_PROFILE", "guarantees-fast")
    run_state_machine_as_test(build_machine(harness), settings=settings(settings.get_profile(profile)))
