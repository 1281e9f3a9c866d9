"""Fuzzing the webhook intake through the real handler: only 200/400/401/413 answers (503 only while the key
fetch fails or for made-up kids past the key-fetch budget), never an exception or another 5xx. Small run in
`make test`; `make fuzz` runs >= 100k inputs."""
# ruff: noqa: PLC0415 - imports that must wait for moto, the environment or sys.path

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.cb_fuzz_target import KID, FuzzTarget
from tests.support.paths import ROOT
from tests.support.signing import SIGNATURE_HEADERS

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0") or 0)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.integers(min_value=10**20, max_value=10**60),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
event_types = st.sampled_from(
    ["QUEUED", "AGENT_JOINED", "AGENT_LEFT", "TRANSFER", "TEXT", "WEB_HOOK_VERIFY"]
) | st.text(max_size=12)


@st.composite
def event_payloads(draw: Any, conversation: str) -> Any:
    shape = draw(st.integers(0, 9))
    if shape == 0:
        return draw(json_values)  # any JSON at all
    if shape <= 4:  # a well-formed event (so the store and the state are exercised), odd text allowed
        return {
            "eventType": draw(st.sampled_from(["QUEUED", "AGENT_JOINED", "AGENT_LEFT", "TRANSFER", "TEXT"])),
            "messageType": "SYSTEM",
            "conversationId": draw(st.sampled_from([conversation, "unknown-conv"]) | st.text(min_size=1, max_size=40)),
            "timestamp": draw(st.integers(min_value=0, max_value=2**45)),
            "agentId": draw(st.text(max_size=10)),
            "message": draw(st.text(max_size=100)),
        }
    payload: dict[str, Any] = {}
    fields = {
        "eventType": event_types,
        "conversationId": st.sampled_from([conversation, "unknown-conv"]) | st.text(max_size=300) | json_scalars,
        "timestamp": st.integers(min_value=0, max_value=2**53) | json_scalars,
        "messageType": st.sampled_from(["SYSTEM", "AGENT"]) | json_values,
        "queueId": st.text(max_size=10) | st.integers() | json_values,
        "queueName": st.text(max_size=20) | json_values,
        "agentId": st.text(max_size=10) | st.integers() | json_values,
        "agentName": st.text(max_size=20) | json_values,
        "message": st.text(max_size=200) | json_values,
        "notificationVersion": st.text(max_size=10),
    }
    for name, strategy in fields.items():
        if draw(st.integers(0, 5)) > 0 or name in ("eventType", "conversationId", "timestamp"):
            payload[name] = draw(strategy)
    payload.update(draw(st.dictionaries(st.text(max_size=12), json_values, max_size=3)))
    return payload


header_names = (
    st.sampled_from(SIGNATURE_HEADERS)
    | st.sampled_from([h.upper() for h in SIGNATURE_HEADERS] + ["X-8x8-Signature", "content-type", "x-amzn-trace-id"])
    | st.text(min_size=1, max_size=20)
)
header_values = st.text(max_size=80) | st.from_regex(r"\A[A-Za-z0-9_.:-]{0,40}\Z") | st.integers().map(str)
protected_headers = st.dictionaries(
    st.sampled_from(["alg", "b64", "crit", "kid", "typ", "jku", "x5u", "zip"]) | st.text(max_size=6),
    st.sampled_from(["RS256", "HS256", "none", KID, False, True, ["b64"], ["b64", "x"], []]) | json_values,
    max_size=6,
)


@st.composite
def deliveries(draw: Any, target: FuzzTarget) -> dict[str, Any]:
    mode = draw(st.sampled_from(["raw", "signed", "signed", "mutated", "protected", "key-down", "body-mutated"]))
    payload = draw(event_payloads(target.conversation))
    body = json.dumps(payload).encode() if draw(st.integers(0, 9)) else draw(st.binary(max_size=300))
    event_id = draw(
        st.sampled_from([target.new_event_id(), "fixed-event"]) | st.from_regex(r"\A[A-Za-z0-9._:-]{1,128}\Z")
    )
    kwargs: dict[str, Any] = {}
    if mode == "raw":
        headers = draw(st.dictionaries(header_names, header_values, max_size=8))
    else:
        protected = draw(protected_headers) if mode == "protected" else None
        if mode == "key-down":
            protected = {
                "b64": False,
                "crit": ["b64"],
                "kid": draw(st.from_regex(r"\A[A-Za-z0-9_-]{1,20}\Z")),
                "alg": "RS256",
            }
            kwargs["key_down"] = True
        tt_offset = draw(st.sampled_from([0, 0, 0, -301_000, 301_000]) | st.integers(-(10**9), 10**9))
        headers = target.sign(
            body,
            event_id=event_id,
            retry=draw(st.integers(0, 10)),
            tt=int(time.time() * 1000) + tt_offset,
            protected=protected,
        )
        if mode == "mutated":
            headers[draw(st.sampled_from(SIGNATURE_HEADERS))] = draw(header_values)
        if mode == "body-mutated" and body:
            i = draw(st.integers(0, len(body) - 1))
            body = body[:i] + bytes([body[i] ^ draw(st.integers(1, 255))]) + body[i + 1 :]
        if draw(st.booleans()):
            headers = {k.upper() if draw(st.booleans()) else k: v for k, v in headers.items()}
    kwargs["force_base64"] = draw(st.integers(0, 7)) == 0
    return {"headers": headers, "body": body, **kwargs}


def run_fuzz(target: FuzzTarget, examples: int) -> None:
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def fuzz(data: st.DataObject) -> None:
        target.deliver(**data.draw(deliveries(target)))

    fuzz()


def test_fuzz_webhook_intake_small(fuzz_target: FuzzTarget) -> None:
    run_fuzz(fuzz_target, 300)
    assert fuzz_target.count >= 300
    assert {200, 401} <= set(fuzz_target.statuses), fuzz_target.statuses  # both sides of the gate were reached


def test_made_up_kids_spending_the_key_fetch_budget_leave_8x8s_key_served(fuzz_target: FuzzTarget) -> None:
    """Made-up kids first, as a fuzz run may draw them: they spend the key-fetch budget and get 503 (by design);
    8x8's own key is still served, so its next event gets past the gate."""
    answers = []
    for n in range(12):  # past the per-source and the container's fetch budgets
        made_up = {"b64": False, "crit": ["b64"], "kid": f"made-up-{n}", "alg": "RS256"}
        headers = fuzz_target.sign(b"{}", event_id=fuzz_target.new_event_id(), protected=made_up)
        answers.append(fuzz_target.deliver(headers, b"{}"))
    assert answers[0] == 401 and answers[-1] == 503, answers
    body = b'{"eventType":"QUEUED","conversationId":"conv-fuzz","timestamp":1}'
    assert fuzz_target.deliver(fuzz_target.sign(body, event_id=fuzz_target.new_event_id()), body) == 200


SPECIAL_BODIES = [
    b"[" * 50_000 + b"]" * 50_000,  # deeper than the JSON parser's recursion limit
    b'{"a":' * 30_000 + b"1" + b"}" * 30_000,
    b"\xff\xfe" + "{}".encode("utf-16-le"),
    b'{"eventType":"TEXT","conversationId":"conv-fuzz","timestamp":1,"message":"\\ud800"}',
    b'{"eventType":"QUEUED","conversationId":"conv-fuzz","timestamp":1e400}',
    b'{"eventType":"QUEUED","conversationId":"conv-fuzz","timestamp":' + b"9" * 200 + b"}",
    b'{"eventType":"QUEUED","conversationId":"conv-fuzz","timestamp":99999999999999999999999999999999999999999}',
    b'{"eventType":"TEXT","conversationId":"conv-fuzz","timestamp":1,"message":"' + b"x" * 250_000 + b'"}',
    b"x" * 300_000,
    b"",
    b"null",
]


@pytest.mark.parametrize("body", SPECIAL_BODIES, ids=lambda b: f"{b[:16]!r}..{len(b)}")
def test_signed_hostile_bodies(fuzz_target: FuzzTarget, body: bytes) -> None:
    """Signed (so they get past the gate) but hostile bodies: 4xx or 200, never 5xx."""
    status = fuzz_target.deliver(fuzz_target.sign(body, event_id=fuzz_target.new_event_id()), body)
    assert status in {200, 400, 413}


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_fuzz_webhook_intake_long(fuzz_target: FuzzTarget) -> None:
    """FUZZ_EXAMPLES inputs (default 100000): atheris (coverage-guided) when it is installed, else hypothesis."""
    examples = EXAMPLES or 100_000
    started = time.monotonic()
    try:
        import atheris  # noqa: F401

        have_atheris = True
    except ImportError:
        have_atheris = False
    if have_atheris:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.fuzz.atheris_webhook",
                f"-runs={examples}",
                "-max_len=4096",
                "-rss_limit_mb=8192",
            ],
            capture_output=True,
            check=False,
            text=True,
            timeout=3600,
            cwd=ROOT,
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("layers/common", "emulator", ".")),
            },
        )
        tail = (result.stdout + result.stderr)[-3000:]
        assert result.returncode == 0, tail
        line = next(x for x in reversed(result.stdout.splitlines()) if x.startswith("FUZZ-SUMMARY"))
        print("\n" + line)
        assert int(line.split("inputs=")[1].split()[0]) >= examples
    else:
        run_fuzz(fuzz_target, examples)
        elapsed = time.monotonic() - started
        print(
            f"\nFUZZ-SUMMARY hypothesis inputs={fuzz_target.count} seconds={elapsed:.0f} "
            f"rate={fuzz_target.count / elapsed:.0f}/s statuses={fuzz_target.statuses}"
        )
        assert fuzz_target.count >= examples
