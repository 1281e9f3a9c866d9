"""Fixtures shared by the whole suite: dummy AWS credentials, moto-backed AWS resources built from
template.yaml, a webhook signer written from CONTRACT.md (not the code under test), and a reset of casebridge's
per-container caches. The plumbing itself lives in tests/support (the bench uses it too)."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from moto import mock_aws

from tests.support.aws import REGION, AwsResources, aws_client, create_resources, load_template, serialise_dynamodb
from tests.support.connector import reset_casebridge as _reset_casebridge
from tests.support.signing import TENANT_ID, WebhookSigner, new_rsa_key

CHANNEL_ID = "channel-1"
BASE_URL = "https://api.8x8.test"


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(autouse=True)
def _long_lived_objects_left_out_of_collections() -> Iterator[None]:
    """The emulator, the handlers and the test share one interpreter, and a full garbage collection stops them
    all: over the ~600,000 objects the suite keeps (botocore's models, moto, the imported modules) one took 0.9 s,
    measured mid-suite, longer than the guarantee tests' 0.5 s HTTP timeout, so a plain answer of 8x8 arrived as a
    timeout (a counted ambiguous attempt and its duplicate in a row with no fault). What exists before a test is
    left out of the collections during it, and handed back after."""
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture
def reset_casebridge() -> Iterator[None]:
    """Forget cached settings, services and AWS clients before and after the test."""
    _reset_casebridge()
    yield
    _reset_casebridge()


# ---- AWS (moto) ----------------------------------------------------------------------------------
@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials and region; nothing can reach a real AWS account or a local stand-in."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_DEV", "false")


@pytest.fixture
def aws(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto in-process, each DynamoDB request atomic as DynamoDB's are (serialise_dynamodb): a test whose threads
    race tests the connector's races, not moto's."""
    serialise_dynamodb(monkeypatch)
    with mock_aws():
        yield


@pytest.fixture
def aws_resources(aws: None) -> AwsResources:
    """Everything template.yaml creates that the functions call (table, bus, outbound queues, secret)."""
    return create_resources()


@pytest.fixture
def cases_table(aws_resources: AwsResources) -> str:
    """The cases table, created from template.yaml's CasesTable (keys, billing, TTL)."""
    return aws_resources.table


@dataclass(frozen=True)
class Queues:
    outbound_url: str
    dead_letter_url: str


@pytest.fixture
def fifo_queues(aws_resources: AwsResources) -> Queues:
    """The outbound FIFO queue and its dead-letter queue (attributes from template.yaml)."""
    return Queues(aws_resources.queue_url, aws_resources.dlq_url)


@dataclass
class EventBus:
    """The case event bus, with a rule that copies everything it carries into a queue the test can read."""

    name: str
    capture_url: str

    def published(self) -> list[dict[str, Any]]:
        sqs = aws_client("sqs")
        events: list[dict[str, Any]] = []
        while True:
            answer = sqs.receive_message(QueueUrl=self.capture_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            messages = answer.get("Messages", [])
            if not messages:
                return events
            for message in messages:
                events.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.capture_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def event_bus(aws_resources: AwsResources) -> EventBus:
    events = aws_client("events")
    sqs = aws_client("sqs")
    name = aws_resources.bus
    capture = sqs.create_queue(QueueName="captured-case-events")["QueueUrl"]
    capture_arn = sqs.get_queue_attributes(QueueUrl=capture, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="capture-all", EventBusName=name, EventPattern=json.dumps({"source": ["casebridge"]}))
    events.put_targets(Rule="capture-all", EventBusName=name, Targets=[{"Id": "capture", "Arn": capture_arn}])
    return EventBus(name, capture)


@pytest.fixture
def credentials_secret(aws_resources: AwsResources) -> str:
    return aws_resources.secret_arn


@pytest.fixture
def casebridge_env(
    monkeypatch: pytest.MonkeyPatch,
    reset_casebridge: None,
    aws_resources: AwsResources,
    event_bus: EventBus,
) -> dict[str, str]:
    """Every variable template.yaml gives the functions, pointing at the moto resources."""
    values = {
        **aws_resources.environment(),
        "EIGHTXEIGHT_BASE_URL": BASE_URL,
        "EIGHTXEIGHT_API": "chat-api-v2",
        "EIGHTXEIGHT_REGION": "us",
        "EIGHTXEIGHT_TENANT_ID": TENANT_ID,
        "EIGHTXEIGHT_CHANNEL_ID": CHANNEL_ID,
        "WEBHOOK_TOLERANCE_SECONDS": "300",
        "MAX_SEND_ATTEMPTS": "8",
        "POWERTOOLS_SERVICE_NAME": "casebridge",
        "POWERTOOLS_METRICS_NAMESPACE": "Casebridge",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


# ---- webhook signatures (tests/support/signing.py: written from CONTRACT.md) ---------------------
@pytest.fixture(scope="session")
def rsa_private_key() -> rsa.RSAPrivateKey:
    return new_rsa_key()


@pytest.fixture(scope="session")
def other_rsa_private_key() -> rsa.RSAPrivateKey:
    return new_rsa_key()


@pytest.fixture
def webhook_signer(rsa_private_key: rsa.RSAPrivateKey) -> WebhookSigner:
    return WebhookSigner(rsa_private_key, kid="test-kid-1")
