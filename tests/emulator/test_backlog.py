"""Local servers take a burst of simultaneous connects without dropping any."""

from __future__ import annotations

import select
import socket
import time

from cc_emulator.http_base import LISTEN_BACKLOG
from cc_emulator.pytest_plugin import WebhookReceiver
from cc_emulator.server import EmulatorServer

BURST = 100


def _burst_connects(host: str, port: int, budget: float) -> int:
    """Fire BURST non-blocking connects at once; return how many completed within `budget` seconds.

    A backlog of 5 drops SYNs beyond the queue and the kernel retries them after about a second,
    so with a budget well under a second only a realistic backlog completes them all.
    """
    socks = []
    for _ in range(BURST):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex((host, port))
        socks.append(s)
    pending = set(socks)
    done = 0
    deadline = time.monotonic() + budget
    try:
        while pending and time.monotonic() < deadline:
            _, writable, _ = select.select([], list(pending), [], max(0.0, deadline - time.monotonic()))
            for s in writable:
                pending.discard(s)
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    done += 1
    finally:
        for s in socks:
            s.close()
    return done


def test_backlog_is_realistic() -> None:
    assert LISTEN_BACKLOG >= 128


def test_emulator_accepts_a_burst_of_connects(emulator: EmulatorServer) -> None:
    host, port = emulator.base_url.removeprefix("http://").rsplit(":", 1)
    assert _burst_connects(host, int(port), budget=0.7) == BURST


def test_webhook_receiver_accepts_a_burst_of_connects(webhook_receiver: WebhookReceiver) -> None:
    host, port = webhook_receiver.url.removeprefix("http://").split("/")[0].rsplit(":", 1)
    assert _burst_connects(host, int(port), budget=0.7) == BURST
