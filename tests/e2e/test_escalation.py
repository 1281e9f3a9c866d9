"""The escalation through the local stack: the real handlers, moto with the template's sparse index, the
template's schedule (run on demand here), and the 8x8 emulator's Real-time Metrics, read receipts and thinking."""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from scripts.local_stack.stack import LocalStack
from tests.e2e.e2e_support import BILLING, SUPPORT, Client


def sweep(stack: LocalStack) -> dict[str, Any]:
    [report] = stack.run_schedules("EscalationTimersFunction")  # the escalation's timers
    assert stack.problems() == []
    assert report["failures"] == 0
    result: dict[str, Any] = report
    return result


def test_availability_has_the_documented_shape_with_the_emulator_s_figures(client: Client) -> None:
    answer = client.call("GET", f"/queues/{SUPPORT}/availability")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["queueId"] == SUPPORT
    assert body["reason"] in ("open", "no-agents")  # always open here (no hours document); figures from metrics
    assert isinstance(body["agentsAvailable"], int) and isinstance(body["waiting"], int)
    again = client.call("GET", f"/queues/{SUPPORT}/availability").json()
    assert again["asOf"] == body["asOf"]  # inside 5 s: the shared figures, not a second metrics call


def test_agent_ends_then_handed_back_and_transcript(client: Client, stack: LocalStack, opened: tuple[str, str]) -> None:
    case_id, _ = opened
    posted = client.post(case_id, "I was charged twice", clientMessageId="cm-e2e-1")
    assert posted.status_code == 202, posted.text
    [delivered] = client.wait_event(case_id, "MessageDelivered")
    assert delivered["clientMessageId"] == "cm-e2e-1"
    [written] = [e for e in client.timeline(case_id) if e["type"] == "CustomerMessage"]
    assert written["text"] == "I was charged twice"
    client.agent(client.agent_of(case_id), "leave")
    [handed_back] = client.wait_event(case_id, "HandedBack")
    assert handed_back["reason"] == "agent-ended"
    sweep(stack)
    [ready] = client.wait_event(case_id, "TranscriptReady")
    assert ready["messages"] >= 1
    transcript = client.call("GET", f"/cases/{case_id}/transcript").json()
    assert transcript["interactions"][0]["endReason"] == "agent-ended"
    assert any(m["text"] == "I was charged twice" for m in transcript["messages"])
    text = client.call("GET", f"/cases/{case_id}/transcript?format=text")
    assert text.headers["content-type"].startswith("text/plain") and "Customer: I was charged twice" in text.text
    sweep(stack)  # done: nothing more for this case
    assert len([e for e in client.timeline(case_id) if e["type"] == "TranscriptReady"]) == 1


def test_read_receipt_and_thinking(client: Client, stack: LocalStack, opened: tuple[str, str]) -> None:
    case_id, _ = opened
    read = client.call("POST", f"/cases/{case_id}/read", json={})
    thinking = client.call("POST", f"/cases/{case_id}/typing", json={"kind": "thinking"})
    if stack.options.api == "chat-gateway-v1":
        assert (read.status_code, thinking.status_code) == (204, 204), (read.text, thinking.text)
    else:
        assert (read.status_code, thinking.status_code) == (400, 400)


def test_concurrent_callers_make_one_metrics_call_per_queue_per_5_seconds(client: Client, stack: LocalStack) -> None:
    def metrics_calls() -> list[dict[str, Any]]:
        answer = client.control("GET", "/requests", params={"op": "realtime_queue"})
        calls: list[dict[str, Any]] = answer.json()["requests"]
        return calls

    before = len(metrics_calls())
    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:  # the local stack starts more containers under concurrent calls

        def burst(_: int) -> list[int]:
            statuses = []
            while time.monotonic() - started < 7:
                statuses.append(client.call("GET", f"/queues/{BILLING}/availability").status_code)
            return statuses

        statuses = [s for batch in pool.map(burst, range(16)) for s in batch]
    elapsed = time.monotonic() - started
    made = len(metrics_calls()) - before
    print(f"availability: {len(statuses)} answers in {elapsed:.1f} s, {made} Real-time Metrics calls")
    assert set(statuses) == {200} and len(statuses) > 50
    assert 1 <= made <= math.ceil(elapsed / 5) + 1, (made, len(statuses), elapsed)


def test_bad_ids_on_the_escalation_routes_are_400(client: Client) -> None:
    for method, path in (
        ("GET", "/cases/a%2Fb/transcript"),
        ("POST", "/cases/bad%24id/read"),
        ("GET", "/queues/a%2Fb/availability"),
        ("GET", "/queues/bad%24id/availability"),
    ):
        answer = client.call(method, path, json={} if method == "POST" else None)
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json()["error"]["code"] == "InvalidRequest"
