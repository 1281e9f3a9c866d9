"""Fixtures shared by the whole suite: dummy AWS credentials, moto-backed AWS resources built from
template.yaml, a webhook signer written from CONTRACT.md (with `cryptography`, not the code under test),
and a reset of casebridge's per-container caches."""

from __future__ import annotations

import base64
import functools
import json
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from moto import mock_aws

from casebridge import aws as casebridge_aws
from casebridge import services as casebridge_services
from casebridge import settings as casebridge_settings

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_PATH = ROOT / "template.yaml"
REGION = "us-east-1"
TENANT_ID = "acme-tenant"
CUSTOMER_ID = "acme-customer"
CHANNEL_ID = "channel-1"
BASE_URL = "https://api.8x8.test"


# ---- template.yaml -------------------------------------------------------------------------------
class _CfnLoader(yaml.SafeLoader):
    """A YAML loader that keeps CloudFormation short-form tags (!Ref, !GetAtt, !Sub ...) as plain data."""


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_template() -> dict[str, Any]:
    return yaml.load(TEMPLATE_PATH.read_text(), Loader=_CfnLoader)


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_template()


# ---- casebridge caches ---------------------------------------------------------------------------
def _reset_casebridge() -> None:
    casebridge_settings.get_settings.cache_clear()
    casebridge_services.set_services(None)
    casebridge_aws.reset_clients()


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


@functools.cache
def aws_client(service: str) -> Any:
    """A boto3 client for the tests' own calls, made once per session (moto intercepts it whenever a mock
    is active; creating clients is the slowest part of a moto test)."""
    return boto3.client(service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture
def aws(aws_env: None) -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def cases_table(aws: None, template: dict[str, Any]) -> str:
    """The cases table, created from template.yaml's CasesTable (keys, billing, TTL)."""
    props = template["Resources"]["CasesTable"]["Properties"]
    name = "casebridge-cases"
    client = aws_client("dynamodb")
    client.create_table(
        TableName=name,
        AttributeDefinitions=props["AttributeDefinitions"],
        KeySchema=props["KeySchema"],
        BillingMode=props["BillingMode"],
    )
    ttl = props["TimeToLiveSpecification"]
    client.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": ttl["Enabled"]}
    )
    return name


@dataclass(frozen=True)
class Queues:
    outbound_url: str
    dead_letter_url: str


@pytest.fixture
def fifo_queues(aws: None) -> Queues:
    """The outbound FIFO queue and its dead-letter queue (attributes as in template.yaml)."""
    sqs = aws_client("sqs")
    fifo = {"FifoQueue": "true", "ContentBasedDeduplication": "false"}
    dlq = sqs.create_queue(QueueName="casebridge-outbound-dlq.fifo", Attributes=fifo)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    outbound = sqs.create_queue(
        QueueName="casebridge-outbound.fifo",
        Attributes={
            **fifo,
            "DeduplicationScope": "messageGroup",
            "FifoThroughputLimit": "perMessageGroupId",
            "VisibilityTimeout": "120",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 60}),
        },
    )["QueueUrl"]
    return Queues(outbound, dlq)


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
def event_bus(aws: None) -> EventBus:
    events = aws_client("events")
    sqs = aws_client("sqs")
    name = "casebridge-case-events"
    events.create_event_bus(Name=name)
    capture = sqs.create_queue(QueueName="captured-case-events")["QueueUrl"]
    capture_arn = sqs.get_queue_attributes(QueueUrl=capture, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="capture-all", EventBusName=name, EventPattern=json.dumps({"source": ["casebridge"]}))
    events.put_targets(Rule="capture-all", EventBusName=name, Targets=[{"Id": "capture", "Arn": capture_arn}])
    return EventBus(name, capture)


@pytest.fixture
def credentials_secret(aws: None) -> str:
    client = aws_client("secretsmanager")
    return client.create_secret(
        Name="casebridge/8x8", SecretString=json.dumps({"apiKey": "key-1", "apiSecret": "secret-1"})
    )["ARN"]


@pytest.fixture
def casebridge_env(
    monkeypatch: pytest.MonkeyPatch,
    reset_casebridge: None,
    cases_table: str,
    fifo_queues: Queues,
    event_bus: EventBus,
    credentials_secret: str,
) -> dict[str, str]:
    """Every variable template.yaml gives the functions, pointing at the moto resources."""
    values = {
        "CASES_TABLE_NAME": cases_table,
        "EVENT_BUS_NAME": event_bus.name,
        "OUTBOUND_QUEUE_URL": fifo_queues.outbound_url,
        "OUTBOUND_DLQ_URL": fifo_queues.dead_letter_url,
        "EIGHTXEIGHT_BASE_URL": BASE_URL,
        "EIGHTXEIGHT_REGION": "us",
        "EIGHTXEIGHT_TENANT_ID": TENANT_ID,
        "EIGHTXEIGHT_CHANNEL_ID": CHANNEL_ID,
        "EIGHTXEIGHT_SECRET_ARN": credentials_secret,
        "WEBHOOK_TOLERANCE_SECONDS": "300",
        "MAX_SEND_ATTEMPTS": "8",
        "POWERTOOLS_SERVICE_NAME": "casebridge",
        "POWERTOOLS_METRICS_NAMESPACE": "Casebridge",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


# ---- webhook signatures (written from CONTRACT.md, independent of casebridge) ---------------------
def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _int_b64url(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@dataclass
class WebhookSigner:
    """Signs webhook deliveries exactly as 8x8 does: a JWS with detached, unencoded payload (RFC 7797)."""

    private_key: rsa.RSAPrivateKey
    kid: str
    tenant_id: str = TENANT_ID
    customer_id: str = CUSTOMER_ID
    extra_keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)

    @property
    def public_jwk(self) -> dict[str, str]:
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "kid": self.kid,
            "use": "sig",
            "alg": "RS256",
            "n": _int_b64url(numbers.n),
            "e": _int_b64url(numbers.e),
        }

    @staticmethod
    def payload(body: bytes, customer_id: str, event_id: str, retry: int, tenant_id: str, tt: int) -> bytes:
        checksum = zlib.crc32(body) & 0xFFFFFFFF
        return (
            f'{{"checksum":{checksum},"cid":"{customer_id}","eid":"{event_id}",'
            f'"retry":{retry},"tid":"{tenant_id}","tt":{tt}}}'
        ).encode()

    def jws(self, protected: dict[str, Any] | str, payload: bytes, key: rsa.RSAPrivateKey | None = None) -> str:
        """`protected` is a header dict (serialised compactly) or an already-encoded segment."""
        segment = (
            protected if isinstance(protected, str) else b64url(json.dumps(protected, separators=(",", ":")).encode())
        )
        signature = (key or self.private_key).sign(
            segment.encode("ascii") + b"." + payload, padding.PKCS1v15(), hashes.SHA256()
        )
        return f"{segment}..{b64url(signature)}"

    def headers(
        self,
        body: bytes,
        *,
        event_id: str | None = None,
        retry: int = 0,
        tt: int | None = None,
        tenant_id: str | None = None,
        customer_id: str | None = None,
        protected: dict[str, Any] | str | None = None,
        key: rsa.RSAPrivateKey | None = None,
    ) -> dict[str, str]:
        """The six x-8x8-* headers of a delivery of `body`, signed now (unless `tt` says otherwise)."""
        event_id = event_id or str(uuid.uuid4())
        tt = int(time.time() * 1000) if tt is None else tt
        tenant_id = tenant_id or self.tenant_id
        customer_id = customer_id or self.customer_id
        header = (
            protected if protected is not None else {"b64": False, "crit": ["b64"], "kid": self.kid, "alg": "RS256"}
        )
        payload = self.payload(body, customer_id, event_id, retry, tenant_id, tt)
        return {
            "x-8x8-signature": self.jws(header, payload, key),
            "x-8x8-event-id": event_id,
            "x-8x8-retry": str(retry),
            "x-8x8-transmission-time": str(tt),
            "x-8x8-tenant-id": tenant_id,
            "x-8x8-customer-id": customer_id,
        }


@pytest.fixture(scope="session")
def rsa_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def other_rsa_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def webhook_signer(rsa_private_key: rsa.RSAPrivateKey) -> WebhookSigner:
    return WebhookSigner(rsa_private_key, kid="test-kid-1")
