"""`make demo` on both 8x8 APIs: the whole case (open with data and history → queued → agent → messages both ways →
transfer → leave → reopen on the same conversation), then the escalation scene (refused outside hours → escalated
during hours → wait updates → the agent ends with a wrap-up code → handed back → transcript downloaded), plays
through the local stack, provisioned by the template's custom resource. The demo checks every step itself and
exits non-zero if one does not happen."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
BOB_GREETING = "Hello Jane, Bob from Billing. I have your case and the whole conversation."  # local_stack/options.py


def section(stdout: str, heading: str) -> list[str]:
    """The lines of one of the demo's closing sections: from its `== heading` to the blank line after it."""
    lines = stdout.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(f"== {heading}"))
    return lines[start + 1 : lines.index("", start)]


@pytest.mark.parametrize("api", ["chat-gateway-v1", "chat-api-v2"])
def test_the_demo_plays_the_whole_case(api: str, tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "scripts.demo", "--api", api, "--log", str(tmp_path / "functions.log")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"8x8 API: {api}" in run.stdout
    assert "Demo OK: every step happened" in run.stdout
    assert run.stdout.count("CustomerLeft") >= 2, "the case closed, reopened and closed again"
    assert "POST conversation (whenUnavailable refuse): 409 QueueUnavailable" in run.stdout
    assert "ends the interaction with wrap-up code 'Refund issued'" in run.stdout
    assert "ok: WaitUpdate" in run.stdout
    assert "ok: HandedBack reason=agent-ended wrapUpCode='Refund issued'" in run.stdout
    assert "wrap-up: Refund issued" in run.stdout, "the text transcript was downloaded"
    # The business's timeline names the agent of every agent event (its id on the Gateway, which has no names).
    business = section(run.stdout, "What the business saw")
    agent_events = [line.split(maxsplit=1) for line in business if line.split()[0].startswith("Agent")]
    assert len(agent_events) >= 8, business
    for event in agent_events:
        assert len(event) == 2 and not event[1].startswith("'"), f"no agent in {event}"
    # Bob greets once: the reopened case goes on with him, without a second greeting.
    agents_saw = section(run.stdout, "What the agents saw")
    assert sum(BOB_GREETING in line for line in agents_saw) == 1, agents_saw
    assert sum(BOB_GREETING in line for line in business) == 1, business
