"""Coverage-guided fuzzing of the webhook intake with atheris (libFuzzer), through the real handler.

    PYTHONPATH=layers/common:emulator:. .venv/bin/python -m tests.fuzz.atheris_webhook -runs=100000 -max_len=4096

Run by tests/fuzz/test_fuzz_webhook_intake.py::test_fuzz_webhook_intake_long (make fuzz). Any answer other
than 200/400/401/413 (503 only while the key fetch fails), or any exception, stops the run as a crash."""

from __future__ import annotations

import json
import sys
import time
import warnings

import atheris

with atheris.instrument_imports():
    import casebridge.business_api.http
    import casebridge.business_api.models
    import casebridge.contact_center.webhook_signature
    import casebridge.state
    import casebridge.store
    import casebridge.webhooks  # noqa: F401

from moto import mock_aws

from tests.fuzz.cb_fuzz_target import KID, FuzzTarget
from tests.support.signing import SIGNATURE_HEADERS

warnings.filterwarnings("ignore")
MOCK = mock_aws()
MOCK.start()
TARGET = FuzzTarget()
RUNS = next((int(a.split("=", 1)[1]) for a in sys.argv if a.startswith("-runs=")), 0)
STARTED = time.monotonic()
EVENT_TYPES = ["QUEUED", "AGENT_JOINED", "AGENT_LEFT", "TRANSFER", "TEXT", "WEB_HOOK_VERIFY", "X"]


def summary() -> None:
    elapsed = time.monotonic() - STARTED
    print(
        f"FUZZ-SUMMARY atheris inputs={TARGET.count} seconds={elapsed:.0f} rate={TARGET.count / elapsed:.0f}/s "
        f"statuses={dict(sorted(TARGET.statuses.items()))}",
        flush=True,
    )


def one_input(data: bytes) -> None:
    try:
        _one_input(data)
    finally:
        if TARGET.count % 10_000 == 0 or TARGET.count == RUNS:
            summary()


def _one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    mode = (fdp.ConsumeIntInRange(0, 9) + TARGET.count) % 10  # every mode, even from short inputs
    if mode <= 4:  # unsigned or garbage headers: the gate
        headers = {}
        for _ in range(fdp.ConsumeIntInRange(0, 7)):
            pick = fdp.ConsumeIntInRange(0, len(SIGNATURE_HEADERS))
            name = SIGNATURE_HEADERS[pick] if pick < len(SIGNATURE_HEADERS) else fdp.ConsumeUnicodeNoSurrogates(12)
            headers[name] = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 200))
        body = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 1024))
        TARGET.deliver(headers, body, force_base64=fdp.ConsumeBool())
        return
    # signed: reaches the JSON parsing, validation, store and state
    if not fdp.ConsumeBool():  # short inputs give a well-formed event
        event = {
            "eventType": EVENT_TYPES[fdp.ConsumeIntInRange(0, len(EVENT_TYPES) - 1)],
            "conversationId": TARGET.conversation if fdp.ConsumeBool() else fdp.ConsumeUnicode(20),
            "timestamp": fdp.ConsumeIntInRange(0, 2**45) if not fdp.ConsumeBool() else fdp.ConsumeInt(8),
            "agentId": fdp.ConsumeUnicode(10),
            "message": fdp.ConsumeUnicode(60),
        }
        body = json.dumps(event).encode()
    else:
        body = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 2048))
    protected = None
    key_down = False
    if mode == 8:
        try:
            protected = json.loads(fdp.ConsumeUnicode(80))
        except ValueError:
            protected = {"b64": False, "crit": ["b64"], "kid": KID, "alg": fdp.ConsumeUnicode(6)}
    elif mode == 9:
        protected = {"b64": False, "crit": ["b64"], "kid": f"k{fdp.ConsumeIntInRange(0, 10**6)}", "alg": "RS256"}
        key_down = fdp.ConsumeBool()
    headers = TARGET.sign(
        body,
        event_id=TARGET.new_event_id(),
        retry=fdp.ConsumeIntInRange(0, 5),
        tt=int(time.time() * 1000) + (fdp.ConsumeIntInRange(0, 800_000) + 400_000) % 800_000 - 400_000,
        protected=protected,
    )
    if mode == 7:  # tamper with one signed field
        name = SIGNATURE_HEADERS[fdp.ConsumeIntInRange(0, len(SIGNATURE_HEADERS) - 1)]
        headers[name] = fdp.ConsumeUnicodeNoSurrogates(40)
    TARGET.deliver(headers, body, force_base64=fdp.ConsumeBool(), key_down=key_down)


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
