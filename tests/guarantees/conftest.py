"""Fixtures for the guarantee tests: moto (AWS), the 8x8 emulator (real HTTP), the real handlers."""
# ruff: noqa: PLC0415 - imports that must wait for moto, the environment or sys.path

from __future__ import annotations

import functools
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cb_guarantees_harness import (
    BUS,
    REGION,
    SECRET,
    TABLE,
    AwsFaults,
    Harness,
    MetricsRecorder,
    WebhookBridge,
)

# The state machine: small in `make test`, bigger with GUARANTEES_PROFILE=long.
settings.register_profile(
    "guarantees-fast",
    max_examples=10,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "guarantees-long",
    max_examples=300,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

BASE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "CASES_TABLE_NAME": TABLE,
    "EVENT_BUS_NAME": BUS,
    "EIGHTXEIGHT_REGION": "us",
    "EIGHTXEIGHT_SECRET_ARN": SECRET,
    "HTTP_TIMEOUT_SECONDS": "0.5",
    "WEBHOOK_TOLERANCE_SECONDS": "300",
    "MAX_SEND_ATTEMPTS": "5",
    "RETRY_BASE_SECONDS": "0.05",
    "RETRY_CAP_SECONDS": "0.2",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "Casebridge",
    "POWERTOOLS_SERVICE_NAME": "casebridge",
}

_DDB_LOCK = threading.RLock()


def _serialised(method: Any) -> Any:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _DDB_LOCK:
            return method(*args, **kwargs)

    return wrapper


@pytest.fixture
def aws_resources(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """moto with the template's table, FIFO queue + DLQ, bus and secret. DynamoDB writes are serialised:
    DynamoDB applies each conditional write and transaction atomically; moto's in-memory backend does not
    lock, so without this, concurrent tests would test moto's races rather than the connector's."""
    from moto import mock_aws
    from moto.dynamodb.models import DynamoDBBackend

    for name in ("put_item", "update_item", "delete_item", "transact_write_items", "get_item", "query"):
        monkeypatch.setattr(DynamoDBBackend, name, _serialised(getattr(DynamoDBBackend, name)))
    for key, value in BASE_ENV.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        ddb.create_table(
            TableName=TABLE,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        )
        sqs = boto3.client("sqs", region_name=REGION)
        dlq_url = sqs.create_queue(
            QueueName="casebridge-outbound-dlq.fifo",
            Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "false"},
        )["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        queue_url = sqs.create_queue(
            QueueName="casebridge-outbound.fifo",
            Attributes={
                "FifoQueue": "true",
                "ContentBasedDeduplication": "false",
                "DeduplicationScope": "messageGroup",
                "FifoThroughputLimit": "perMessageGroupId",
                "VisibilityTimeout": "2",
                "RedrivePolicy": f'{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"60"}}',
            },
        )["QueueUrl"]
        boto3.client("events", region_name=REGION).create_event_bus(Name=BUS)
        boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name=SECRET, SecretString='{"apiKey": "K", "apiSecret": "S"}'
        )
        monkeypatch.setenv("OUTBOUND_QUEUE_URL", queue_url)
        monkeypatch.setenv("OUTBOUND_DLQ_URL", dlq_url)
        yield {"queue_url": queue_url, "dlq_url": dlq_url}


@pytest.fixture
def metrics_recorder(monkeypatch: pytest.MonkeyPatch) -> MetricsRecorder:
    from casebridge import observability

    recorder = MetricsRecorder()
    monkeypatch.setattr(observability.metrics, "add_metric", recorder)
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    observability.logger.setLevel(os.environ.get("GUARANTEES_LOG_LEVEL", "CRITICAL"))
    return recorder


@pytest.fixture(scope="session")
def _emulator_process() -> Iterator[Any]:
    from cc_emulator import EmulatorServer
    from cc_emulator.pytest_plugin import make_test_config

    config = make_test_config()
    config.timings.delivery_timeout = 3.0
    config.timings.max_attempts = 8
    config.timings.retry_base_delay = 0.05
    config.timings.retry_max_delay = 0.3
    server = EmulatorServer(config)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def emulator_server(_emulator_process: Any) -> Iterator[Any]:
    """One emulator per session (its RSA key is slow to make), reset to a clean state for every test."""
    _emulator_process.engine.reset()
    for agent in _emulator_process.engine.agents.values():
        agent.available = True
    yield _emulator_process
    _emulator_process.clear_faults()
    _emulator_process.engine.reset()


@pytest.fixture
def harness(
    aws_resources: dict[str, str],
    emulator_server: Any,
    metrics_recorder: MetricsRecorder,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Harness]:
    from casebridge import aws, services, settings

    bridge = WebhookBridge()
    url = bridge.start()
    monkeypatch.setenv("EIGHTXEIGHT_BASE_URL", emulator_server.base_url)
    monkeypatch.setenv("EIGHTXEIGHT_TENANT_ID", emulator_server.config.tenant_id)
    settings.get_settings.cache_clear()
    services.set_services(None)
    aws.reset_clients()
    _, channel_id = emulator_server.provision(url, "101")
    emulator_server.wait_for_delivery("WEB_HOOK_VERIFY")
    monkeypatch.setenv("EIGHTXEIGHT_CHANNEL_ID", channel_id)
    settings.get_settings.cache_clear()
    services.set_services(None)
    aws.reset_clients()
    built = services.get_services()
    faults = AwsFaults()
    faults.attach(built.store.client, built.publisher.client)
    h = Harness(emulator_server, bridge, aws_resources, faults)
    h.metrics = metrics_recorder  # type: ignore[attr-defined]
    try:
        yield h
    finally:
        bridge.stop()
        services.set_services(None)
        settings.get_settings.cache_clear()
        aws.reset_clients()
