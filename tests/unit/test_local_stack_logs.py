"""The local stack's functions' log: each line names the function that wrote it (the functions share one process
and one Powertools logger there, unlike in Lambda), and the file holds this run and one before it, never more."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

from casebridge.observability import logger
from scripts.local_stack.functions import RUNNING, InvocationLogStream, LocalLambdaContext
from scripts.local_stack.stack import LocalStack, StackOptions


def test_each_line_carries_the_function_of_the_thread_that_logged_it() -> None:
    sink = io.StringIO()
    stream = InvocationLogStream(sink)
    started = threading.Barrier(2)

    def run(name: str) -> None:
        RUNNING.context = LocalLambdaContext(name, 256, 30, "us-east-1", "123456789012")
        # The shared logger's own keys say whichever function set them last.
        logger.append_keys(function_name="someone-else")
        started.wait()
        for _ in range(50):
            stream.write(json.dumps({"message": "m", "function_name": "someone-else", "mine": name}) + "\n")

    threads = [threading.Thread(target=run, args=(n,)) for n in ("IntakeFunction", "SenderFunction")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = [json.loads(line) for line in sink.getvalue().splitlines()]
    assert len(lines) == 100
    assert all(line["function_name"] == line["mine"] for line in lines)
    assert all(line["function_arn"].endswith(f":function:{line['mine']}") for line in lines)


def test_a_line_outside_any_invocation_is_left_as_it_is() -> None:
    sink = io.StringIO()
    RUNNING.context = None
    InvocationLogStream(sink).write('{"message": "stack started"}\n')
    assert sink.getvalue() == '{"message": "stack started"}\n'


def test_the_log_keeps_this_run_and_the_one_before(tmp_path: Path) -> None:
    log = tmp_path / "functions.log"
    for run in range(3):
        stack = LocalStack(StackOptions(log_path=log))
        stack._route_function_logs()
        assert stack._log_stream is not None
        stack._log_stream.write(f"run {run}\n")
        stack._close_function_logs()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["functions.log", "functions.log.1"]
    assert log.read_text() == "run 2\n"
    assert (tmp_path / "functions.log.1").read_text() == "run 1\n"
