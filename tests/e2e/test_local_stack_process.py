"""`make local` as a process: a busy port is named with the option that changes it, and stopping `make` stops the
stack and every process it started."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.local_stack import REPO_ROOT
from scripts.local_stack.__main__ import main

FREE_PORTS = {"--api-port": "0", "--emulator-port": "0", "--chat-port": "0", "--aws-port": "0", "--socket-port": "0"}


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        yield int(taken.getsockname()[1])


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("option", "what"),
    [
        ("--aws-port", "AWS stand-in (moto)"),
        ("--emulator-port", "8x8 emulator and agent desk"),
        ("--api-port", "local API"),
        ("--chat-port", "customer chat page"),
        ("--socket-port", "channel WebSocket"),
    ],
)
def test_a_busy_port_is_named_with_the_option_that_changes_it(
    option: str, what: str, busy_port: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ports = {**FREE_PORTS, option: str(busy_port)}
    argv = [*(item for pair in ports.items() for item in pair), "--quiet", "--log", str(tmp_path / "functions.log")]
    assert main(argv) == 1
    said = capsys.readouterr().err
    assert f"port {busy_port} on 127.0.0.1 ({what}) is already in use" in said, said
    assert f"choose another port with {option} PORT (0 = any free port)" in said, said
    assert f'make local ARGS="{option} {busy_port + 100}"' in said, said


def processes_in_session(session_id: int) -> list[str]:
    """The processes (pid and command line) of a session, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) != session_id:
                continue
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (ProcessLookupError, PermissionError, FileNotFoundError):
            continue
        if command:  # a zombie has no command line: it is gone, only not yet reaped
            found.append(f"{entry.name} {command}")
    return found


@pytest.mark.timeout(180)
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc (Linux)")
# SIGTERM: make passes it to its recipe's command. SIGKILL: make dies and passes nothing; the stack notices.
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_stopping_make_local_stops_the_stack_and_its_children(stop_signal: int, tmp_path: Path) -> None:
    make = shutil.which("make")
    assert make is not None, "make is not installed"
    args = " ".join([*(f"{k} {v}" for k, v in FREE_PORTS.items()), "--quiet", "--log", str(tmp_path / "functions.log")])
    # -o: never (re)install the virtualenv from here; its own session, so every process it starts can be found.
    make_local = subprocess.Popen(
        [make, "--no-print-directory", "-o", ".venv/.installed", "local", f"ARGS={args}"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    session = make_local.pid
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in make_local.stdout or []:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        seen: list[str] = []
        deadline = time.monotonic() + 120
        while not any("local stack is running" in line for line in seen):
            assert time.monotonic() < deadline, "".join(seen)
            assert make_local.poll() is None, "".join(seen)
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                continue
        started = processes_in_session(session)
        assert any("scripts.local_stack.moto_process" in p for p in started), started

        os.kill(make_local.pid, stop_signal)  # make alone, as `kill` or a service manager would
        make_local.wait(timeout=30)
        deadline = time.monotonic() + 30
        while left := processes_in_session(session):
            assert time.monotonic() < deadline, f"still running after make stopped: {left}"
            time.sleep(0.1)
    finally:
        if processes_in_session(session):
            os.killpg(session, signal.SIGKILL)
        make_local.wait(timeout=10)
