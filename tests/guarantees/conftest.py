"""Fixtures for the guarantee tests: moto (AWS), the 8x8 emulator (real HTTP), the real handlers."""
# ruff: noqa: PLC0415 - imports that must wait for moto, the environment or sys.path

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from cc_emulator import EmulatorServer
from cc_emulator.pytest_plugin import make_test_config
from tests.guarantees.cb_guarantees_harness import (
    HTTP_TIMEOUT_S,
    Harness,
    MetricsRecorder,
    WebhookBridge,
    connect_harness,
)
from tests.support.aws import AwsResources, create_resources
from tests.support.connector import reset_casebridge

# The state machine: small in `make test`, bigger with GUARANTEES_PROFILE=long.
for profile, examples, steps in (("guarantees-fast", 10, 15), ("guarantees-long", 300, 40)):
    settings.register_profile(
        profile,
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )

# Besides aws_env's credentials and region (tests/conftest.py): short timeouts and retries, so faults play out fast.
BASE_ENV = {
    "AWS_SESSION_TOKEN": "testing",
    "EIGHTXEIGHT_API": "chat-api-v2",
    "EIGHTXEIGHT_REGION": "us",
    "HTTP_TIMEOUT_SECONDS": str(HTTP_TIMEOUT_S),
    "WEBHOOK_TOLERANCE_SECONDS": "300",
    "MAX_SEND_ATTEMPTS": "5",
    "RETRY_BASE_SECONDS": "0.05",
    "RETRY_CAP_SECONDS": "0.2",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "Casebridge",
    "POWERTOOLS_SERVICE_NAME": "casebridge",
}


@pytest.fixture
def aws_resources(aws: None, monkeypatch: pytest.MonkeyPatch) -> AwsResources:
    """moto with template.yaml's resources (a 2 s visibility timeout, so a crashed batch comes back soon); its
    DynamoDB requests are atomic (the root `aws` fixture)."""
    resources = create_resources(credentials=("K", "S"), visibility_timeout=2)
    for key, value in {**BASE_ENV, **resources.environment()}.items():
        monkeypatch.setenv(key, value)
    return resources


@pytest.fixture
def metrics_recorder(monkeypatch: pytest.MonkeyPatch) -> MetricsRecorder:
    from casebridge import observability

    recorder = MetricsRecorder()
    monkeypatch.setattr(observability.metrics, "add_metric", recorder)
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    observability.logger.setLevel(os.environ.get("GUARANTEES_LOG_LEVEL", "CRITICAL"))
    return recorder


@pytest.fixture(scope="session")
def _emulator_process() -> Iterator[EmulatorServer]:
    config = make_test_config()
    config.timings.delivery_timeout = 3.0
    config.timings.max_attempts = 8
    config.timings.retry_base_delay = 0.05
    config.timings.retry_max_delay = 0.3
    with EmulatorServer(config) as server:
        yield server


@pytest.fixture
def emulator_server(_emulator_process: EmulatorServer) -> Iterator[EmulatorServer]:
    """One emulator per session (its RSA key is slow to make), reset to a clean state for every test."""
    _emulator_process.engine.reset()
    for agent in _emulator_process.engine.agents.values():
        agent.available = True
    yield _emulator_process
    _emulator_process.clear_faults()
    _emulator_process.engine.reset()


@pytest.fixture
def contact_center_api(request: pytest.FixtureRequest) -> str:
    """The 8x8 API of the test: Chat API v2 unless the module is marked `both_apis` (cb_guarantees_harness)."""
    return str(getattr(request, "param", "chat-api-v2"))


@pytest.fixture
def harness(
    aws_resources: AwsResources,
    emulator_server: EmulatorServer,
    metrics_recorder: MetricsRecorder,
    contact_center_api: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Harness]:
    bridge = WebhookBridge()
    url = bridge.start()
    monkeypatch.setenv("EIGHTXEIGHT_API", contact_center_api)
    monkeypatch.setenv("EIGHTXEIGHT_BASE_URL", emulator_server.base_url)
    monkeypatch.setenv("EIGHTXEIGHT_TENANT_ID", emulator_server.config.tenant_id)
    reset_casebridge()
    h = connect_harness(emulator_server, bridge, url, aws_resources, metrics_recorder, monkeypatch, contact_center_api)
    try:
        yield h
    finally:
        bridge.stop()
        reset_casebridge()
