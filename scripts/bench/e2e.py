"""Figure 5: end to end through the local stack (scripts/local_stack: moto server in its own process, local API
Gateway, SQS pollers, 8x8 emulator). Each case's agent echoes every customer message at once (reply delay 0), so
one round trip is: business API accept -> queue -> sender -> 8x8 (the agent sees it) -> TEXT webhook -> intake
-> EventBridge -> the business channel sees AgentMessage. CASES cases run at once, each sending its next
message when the last one's echo arrived."""

from __future__ import annotations

import contextlib
import functools
import statistics
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scripts.bench import stack_runs
from scripts.bench.harness import NULL

if TYPE_CHECKING:
    from scripts.local_stack.channel import ChannelEvent

CASES = 5
MESSAGES_PER_CASE = 40
TIMEOUT_S = 20.0
TARGET_P50_MS, TARGET_P99_MS = 150.0, 400.0  # the end-to-end targets of docs/performance.md


@dataclass
class EndToEnd:
    round_trips_ms: list[float] = field(default_factory=list)
    cases: int = 0
    failures: list[str] = field(default_factory=list)
    not_measured: str = ""
    seconds: float = 0.0


def _echoes(text: str, event: ChannelEvent) -> bool:
    return text in str(event.detail.get("text"))


def run(cases: int = CASES, messages: int = MESSAGES_PER_CASE, api: str | None = None) -> EndToEnd:
    result = EndToEnd(cases=cases)
    try:
        from cc_emulator import ScriptConfig  # noqa: PLC0415
        from scripts.local_stack.stack import LocalStack, StackOptions  # noqa: PLC0415
    except ImportError as error:  # the local stack is another engineer's work in progress
        result.not_measured = f"the local stack cannot be imported ({error})"
        return result
    config = stack_runs.emulator_config(cases, ScriptConfig(kind="echo", echo_prefix="echo: "))
    log_path = Path(tempfile.gettempdir()) / "casebridge-bench-e2e.log"
    options: dict[str, Any] = {"emulator_config": config, "log_path": log_path}
    if api is not None:
        options["api"] = api
    started = time.perf_counter()
    lock = threading.Lock()
    try:
        with (
            contextlib.redirect_stdout(NULL),  # the functions' metrics (EMF lines) print to stdout
            LocalStack(StackOptions(**options)).start() as stack,
        ):
            session = stack.session()
            channel = stack.channel
            assert channel is not None, "the local stack started without its business channel"

            def one_case(case_id: str) -> None:
                answer = session.post(f"{stack.api_url}/cases/{case_id}/conversation", json={}, timeout=15)
                answer.raise_for_status()
                channel.wait_for(case_id, "AgentJoined", timeout=TIMEOUT_S)
                for i in range(messages):
                    text = f"message {i} of {case_id}"
                    t0 = time.perf_counter()
                    sent = session.post(f"{stack.api_url}/cases/{case_id}/messages", json={"text": text}, timeout=15)
                    sent.raise_for_status()
                    channel.wait_for(
                        case_id,
                        "AgentMessage",
                        timeout=TIMEOUT_S,
                        where=functools.partial(_echoes, text),
                    )
                    with lock:
                        result.round_trips_ms.append((time.perf_counter() - t0) * 1000)

            stack_runs.at_once("e2e", cases, one_case, result.failures)
    except Exception as error:
        result.not_measured = f"the local stack did not run: {type(error).__name__}: {error}"
        result.failures.append(traceback.format_exc(limit=3))
    result.seconds = time.perf_counter() - started
    return result


def describe(result: object) -> str:
    if not isinstance(result, EndToEnd):
        return f"  {result}"
    if not result.round_trips_ms:
        reason = result.not_measured or (result.failures[0][:400] if result.failures else "no round trip completed")
        return f"  not measured: {reason}"
    values = result.round_trips_ms
    p50, p99 = statistics.median(values), stack_runs.percentile(values, 0.99)
    lines = [
        f"  customer message -> agent (emulator) -> agent's echo -> business event, round trip over {len(values)} "
        f"messages, {result.cases} concurrent cases: p50 {p50:.0f} ms, "
        f"p99 {p99:.0f} ms (target p50 <= {TARGET_P50_MS:.0f}, p99 <= {TARGET_P99_MS:.0f} ms -> "
        f"{'MET' if p50 <= TARGET_P50_MS and p99 <= TARGET_P99_MS else 'MISSED'}; {result.seconds:.0f} s)",
    ]
    if result.failures:
        lines.append(f"  failures: {len(result.failures)}; first: {result.failures[0][:300]}")
    return "\n".join(lines)
