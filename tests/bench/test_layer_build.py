"""The layer's lock and build recipe: what ships is pinned once, leaves the runtime's boto3 alone, and is compiled."""

from __future__ import annotations

import re

import pytest

from casebridge.observability import HandlerTracing, xray_sdk_enabled
from scripts.bench import cost
from scripts.lock_layer import RUNTIME_PROVIDED, canonical
from tests.support.paths import ROOT

LAYER = ROOT / "layers" / "common"


def pins() -> dict[str, str]:
    found = {}
    for line in (LAYER / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            found[canonical(name)] = version
    return found


def test_every_runtime_requirement_is_pinned_and_the_runtime_packages_are_not() -> None:
    locked = pins()
    for line in (LAYER / "requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name = canonical(re.split(r"[\[<>=!~;]", line, maxsplit=1)[0].strip())
            assert name in locked, f"{name} is not in requirements.lock (make lock)"
    assert not set(locked) & RUNTIME_PROVIDED
    assert "aws-xray-sdk" not in locked  # SDK tracing is opt-in (CASEBRIDGE_XRAY_SDK)


def test_the_layer_build_installs_the_lock_without_resolving_again_and_compiles_for_313() -> None:
    recipe = (LAYER / "Makefile").read_text()
    assert "build-CommonLayer:" in recipe
    assert "--no-deps" in recipe and "-r requirements.lock" in recipe
    assert "--invalidation-mode unchecked-hash" in recipe
    venv_rule = (ROOT / "Makefile").read_text()
    assert "-c layers/common/requirements.lock" in venv_rule  # the test venv runs the same pins


def test_without_the_sdk_switch_the_handler_is_left_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CASEBRIDGE_XRAY_SDK", raising=False)
    assert not xray_sdk_enabled()

    def handler(event: dict[str, object], context: object) -> dict[str, object]:
        return event

    assert HandlerTracing(None).capture_lambda_handler(capture_response=False)(handler) is handler
    monkeypatch.setenv("CASEBRIDGE_XRAY_SDK", "TRUE")
    assert xray_sdk_enabled()


def test_throughput_follows_the_duration() -> None:
    assert cost.events_per_second(50.0) == pytest.approx(20.0)
    fast = cost.Invocation(2.0, dynamodb=2, events=1).duration_ms(256)
    assert cost.events_per_second(fast) > cost.events_per_second(
        cost.Invocation(2.0, dynamodb=4, events=1).duration_ms(256)
    )
