"""Figure 8: pushes to the channel on the local stack (scripts/local_stack), and their cost.

Latency: an agent's message (the emulator's control API makes the agent write; 8x8's webhook follows) until a
connected widget receives it on the channel WebSocket, and until the channel's webhook receiver has it (signed,
verified). Path: 8x8 webhook -> intake -> EventBridge -> rule -> fan-out function -> @connections -> widget; and
fan-out -> FIFO queue -> webhook sender -> the channel's endpoint. CASES cases at once, each with one widget.

Cost: $ per 1M pushed events, from the calls each push makes (named below, read from casebridge/push/) and the
public unit prices in scripts/bench/cost.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from scripts.bench import cost, stack_runs
from scripts.bench.harness import NULL

CASES = 3
MESSAGES_PER_CASE = 30
TIMEOUT_S = 20.0
TARGET_P50_MS = 100.0  # agent message -> widget

# Prices beyond cost.py's (us-east-1 list prices, read 2025-06).
WEBSOCKET_PER_1M_MESSAGES = 1.00  # per 32 KB frame, first billion a month
WEBSOCKET_PER_1M_CONNECTION_MINUTES = 0.25
POST_TO_CONNECTION_MS = 10.0  # @connections round trip from a Lambda in the region (assumed, as cost.py's)
PUSH_CODE_MS = 2.0  # our code per invocation (the handlers are thin; JSON and botocore dominate)
# What one pushed event costs in calls (casebridge/push/fanout.py and webhook.py, the steady state: the event is
# the next one for its connection and for the webhook's cursor):
#   fan-out: Query the timeline from the event (committed_from) and, side by side, Query the case's connections;
#            UpdateItem claim per connection; one @connections post per connection; SendMessage to the webhook
#            FIFO queue.
#   sender:  GetItem the cursor, Query the timeline after it, UpdateItem the cursor; one HTTPS POST; the queue's
#            receive and delete.
FANOUT_DYNAMODB = 2  # + 1 UpdateItem per connection
SENDER_DYNAMODB = 3
ITEM_RRU = 0.5  # a consistent read of an item under 4 KB: 1 RRU; Query rounds the sum of what it read
WEBHOOK_POST_MS = 60.0  # the channel's endpoint (assumed)


@dataclass
class PushRun:
    to_widget_ms: list[float] = field(default_factory=list)
    from_intake_ms: list[float] = field(default_factory=list)  # the intake took 8x8's webhook -> widget
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)
    to_webhook_ms: list[float] = field(default_factory=list)
    cases: int = 0
    failures: list[str] = field(default_factory=list)
    not_measured: str = ""
    seconds: float = 0.0


def run(cases: int = CASES, messages: int = MESSAGES_PER_CASE, webhook: bool = False) -> PushRun:
    """`webhook`: the stack also pushes signed webhooks (ChannelWebhookUrl set), and their latency is measured."""
    from websockets.sync.client import connect  # noqa: PLC0415 - a dev dependency, only for this figure

    from cc_emulator import ScriptConfig  # noqa: PLC0415
    from scripts.local_stack.stack import LocalStack, StackOptions  # noqa: PLC0415

    result = PushRun(cases=cases)
    config = stack_runs.emulator_config(cases, ScriptConfig(kind="silent"))
    log_path = Path(tempfile.gettempdir()) / "casebridge-bench-push.log"
    options = StackOptions(emulator_config=config, log_path=log_path, channel_webhook=webhook, chat_page=False)
    lock = threading.Lock()
    started = time.perf_counter()
    try:
        with contextlib.redirect_stdout(NULL), LocalStack(options).start() as stack:
            receiver = stack.webhook_receiver
            arrived: dict[str, float] = {}
            cond = threading.Condition()

            def delivered(delivery: Any) -> None:
                with cond:
                    arrived[str(delivery.event.get("text"))] = time.perf_counter()
                    cond.notify_all()

            if receiver is not None:
                receiver.on_delivery = delivered
            session = stack.session()

            def one_case(case_id: str) -> None:
                session.post(f"{stack.api_url}/cases/{case_id}/conversation", json={}, timeout=15).raise_for_status()
                agent = _agent_of(session, stack.api_url, case_id)
                url = session.post(f"{stack.api_url}/cases/{case_id}/channel-tokens", timeout=15).json()["url"]
                with connect(url, open_timeout=10) as widget:
                    widget.send(json.dumps({"action": "resume", "requestId": "r"}))
                    _until(widget, lambda f: f.get("requestId") == "r")
                    for i in range(messages):
                        text = f"agent message {i} of {case_id}"
                        t0 = time.perf_counter()
                        requests.post(f"{stack.control_url}/agents/{agent}/reply", json={"text": text}, timeout=15)
                        frame = _until(widget, lambda f, text=text: f.get("text") == text)
                        t1 = time.perf_counter()
                        intake_ms = time.time() * 1000 - int(frame["receivedAt"])
                        hooked = None
                        if receiver is not None:
                            with cond:
                                cond.wait_for(lambda text=text: text in arrived, TIMEOUT_S)  # type: ignore[misc]
                                hooked = arrived.get(text)
                        with lock:
                            result.to_widget_ms.append((t1 - t0) * 1000)
                            result.from_intake_ms.append(intake_ms)
                            if hooked is not None:
                                result.to_webhook_ms.append((hooked - t0) * 1000)

            stack_runs.at_once("push", cases, one_case, result.failures)
    except Exception as error:
        result.not_measured = f"the local stack did not run: {type(error).__name__}: {error}"
        result.failures.append(traceback.format_exc(limit=3))
    result.seconds = time.perf_counter() - started
    result.load = os.getloadavg()
    return result


def _agent_of(session: requests.Session, api_url: str, case_id: str) -> str:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        case = session.get(f"{api_url}/cases/{case_id}", timeout=15).json()
        if case.get("agent"):
            return str(case["agent"]["id"])
        time.sleep(0.05)
    raise TimeoutError(f"no agent joined case {case_id}")


def _until(widget: Any, what: Any) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        frame: dict[str, Any] = json.loads(widget.recv(timeout=max(0.01, deadline - time.monotonic())))
        if what(frame):
            return frame


def push_cost(memory_mb: int, connections: int = 1, webhook: bool = True) -> dict[str, float]:
    """$ per 1M pushed events, by service (one event to `connections` widgets and, with `webhook`, the channel)."""
    fan_out = cost.Invocation(
        PUSH_CODE_MS + connections * POST_TO_CONNECTION_MS, dynamodb=FANOUT_DYNAMODB + connections
    )
    invocations = [fan_out]
    sqs = 0.0
    rru, wru = FANOUT_DYNAMODB * ITEM_RRU, float(connections)
    if webhook:
        fan_out = cost.Invocation(fan_out.code_ms, dynamodb=fan_out.dynamodb, sqs=1)
        invocations = [fan_out, cost.Invocation(PUSH_CODE_MS + WEBHOOK_POST_MS, dynamodb=SENDER_DYNAMODB)]
        sqs = 1 + 2 / cost.MESSAGES_PER_BATCH  # send, and the mapping's receive and delete
        rru += 2 * ITEM_RRU
        wru += 1
    gb = memory_mb / 1024
    lambda_gb_s = sum(gb * -(-i.duration_ms(memory_mb) // 1) / 1000 for i in invocations)
    return {
        "Lambda": 1e6 * lambda_gb_s * cost.LAMBDA_ARM_PER_GB_S + len(invocations) * cost.LAMBDA_PER_1M_REQUESTS,
        "API Gateway WebSocket": connections * WEBSOCKET_PER_1M_MESSAGES,
        "DynamoDB": rru * cost.DYNAMODB_PER_1M_RRU + wru * cost.DYNAMODB_PER_1M_WRU,
        "SQS": sqs * cost.SQS_FIFO_PER_1M_REQUESTS,
    }


def describe(result: PushRun, with_webhook: PushRun | None = None) -> str:
    """The widget figure (a stack without webhooks), the webhook figure (`with_webhook`), and the cost."""
    if not result.to_widget_ms:
        reason = result.not_measured or (result.failures[0][:400] if result.failures else "no push completed")
        return f"  not measured: {reason}"
    widget, hooked = result.to_widget_ms, (with_webhook.to_webhook_ms if with_webhook else [])
    p50, p99 = statistics.median(widget), stack_runs.percentile(widget, 0.99)
    lines = [
        f"  agent message -> widget (channel WebSocket), {len(widget)} messages, {result.cases} cases at once: "
        f"p50 {p50:.0f} ms, p99 {p99:.0f} ms (target p50 <= {TARGET_P50_MS:.0f} ms -> "
        f"{'MET' if p50 <= TARGET_P50_MS else 'MISSED'}; {result.seconds:.0f} s)",
    ]
    intake = result.from_intake_ms
    lines.append(
        f"  of which casebridge (the intake received 8x8's webhook -> widget): p50 {statistics.median(intake):.0f} ms,"
        f" p99 {stack_runs.percentile(intake, 0.99):.0f} ms; machine load average {result.load[0]:.1f} (1 min)"
    )
    if hooked:
        lines.append(
            f"  agent message -> channel webhook (signed, verified; a second run with ChannelWebhookUrl), "
            f"{len(hooked)} messages: "
            f"p50 {statistics.median(hooked):.0f} ms, p99 {stack_runs.percentile(hooked, 0.99):.0f} ms"
        )
    for memory in cost.MEMORY_SIZES_MB:
        for label, kwargs in (("widget only", {"webhook": False}), ("widget + webhook", {"webhook": True})):
            parts = push_cost(memory, **kwargs)
            detail = ", ".join(f"{k} {v:.2f}" for k, v in parts.items() if v)
            lines.append(f"  per 1M pushed events, {label:<16} {memory:>4} MB: ${sum(parts.values()):6.2f}  ({detail})")
    lines.append(
        f"  plus connection time: ${WEBSOCKET_PER_1M_CONNECTION_MINUTES:.2f} per 1M connection minutes "
        "(a widget open 10 minutes: $0.0000025)"
    )
    for run_ in (result, with_webhook):
        if run_ is not None and run_.failures:
            lines.append(f"  failures: {len(run_.failures)}; first: {run_.failures[0][:300]}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(describe(run(), run(webhook=True)))
