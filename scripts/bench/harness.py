"""The bench's stand-ins: AWS in-process (moto), a fake 8x8 that counts its calls, a webhook signer, the
Lambda events API Gateway and SQS would send, and a counter of every call the connector's code makes.

Nothing here changes the connector's code paths: AWS calls are counted where every botocore client sends
them (`BaseClient._make_api_call`), 8x8 calls where the HTTP transport would send them (`responses`).
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import io
import json
import logging
import os
import re
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import responses
from aws_lambda_powertools.utilities import parameters
from botocore.client import BaseClient
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

REPO = Path(__file__).resolve().parents[2]


def add_paths() -> None:
    """The layer and the emulator, importable as Lambda and pytest make them."""
    for path in (REPO / "layers" / "common", REPO / "emulator"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))


add_paths()

REGION = "us-east-1"
TENANT = "bench-tenant"
CHANNEL = "bench-channel"
CUSTOMER = "bench-customer"
BASE_URL = "https://8x8.bench.invalid"
CC_REGION = "us"
TABLE = "casebridge-bench"
BUS = "casebridge-bench-bus"
SECRET_NAME = "casebridge-bench-8x8"
FUNCTIONS = ("outbound_sender", "webhook_intake", "conversation_lifecycle")

LAMBDA_ENV = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",  # moto's stand-in credentials, not a secret
    "CASES_TABLE_NAME": TABLE,
    "EVENT_BUS_NAME": BUS,
    "EIGHTXEIGHT_BASE_URL": BASE_URL,
    "EIGHTXEIGHT_REGION": CC_REGION,
    "EIGHTXEIGHT_TENANT_ID": TENANT,
    "EIGHTXEIGHT_CHANNEL_ID": CHANNEL,
    "WEBHOOK_TOLERANCE_SECONDS": "300",
    "MAX_SEND_ATTEMPTS": "8",
    "POWERTOOLS_SERVICE_NAME": "casebridge",
    "POWERTOOLS_METRICS_NAMESPACE": "Casebridge",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


class NullWriter(io.TextIOBase):
    """Where the functions' logs and metrics go during the bench (they are written, then dropped)."""

    def write(self, s: str) -> int:
        return len(s)


NULL = NullWriter()


def apply_environment() -> None:
    for name, value in LAMBDA_ENV.items():
        os.environ[name] = value
    os.environ.pop("AWS_ENDPOINT_URL", None)
    os.environ.pop("AWS_PROFILE", None)


# Powertools reads its settings when casebridge.observability is imported: the environment comes first.
apply_environment()

from casebridge import aws, services, settings  # noqa: E402
from casebridge.observability import logger  # noqa: E402


def silence_function_logs() -> None:
    """Powertools' Logger holds its own stream: point it at a sink (logs are still formatted)."""
    for handler in logging.getLogger(logger.name).handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(NULL)


# ---- counting ----------------------------------------------------------------------------------


@dataclass
class Call:
    kind: str  # "aws" or "8x8"
    service: str  # dynamodb, sqs, events, secretsmanager / 8x8
    operation: str
    params: dict[str, Any]
    seconds: float


@dataclass
class CallLog:
    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, call: Call) -> None:
        with self.lock:
            self.calls.append(call)

    def clear(self) -> None:
        with self.lock:
            self.calls.clear()

    def snapshot(self) -> list[Call]:
        with self.lock:
            return list(self.calls)

    @contextlib.contextmanager
    def window(self) -> Iterator[list[Call]]:
        """The calls made inside the block (the list fills when the block ends)."""
        start = len(self.snapshot())
        taken: list[Call] = []
        try:
            yield taken
        finally:
            taken.extend(self.snapshot()[start:])


def counts(calls: list[Call]) -> Counter[str]:
    return Counter(f"{c.service}.{c.operation}" for c in calls)


def io_seconds(calls: list[Call]) -> float:
    return sum(c.seconds for c in calls)


_SEND = "_make_api_call"  # where every botocore client's API call passes


@contextlib.contextmanager
def count_aws_calls(log: CallLog) -> Iterator[None]:
    """Every botocore client's API call (ours, powertools' Secrets Manager client, anyone's) is logged."""
    original = vars(BaseClient)[_SEND]
    # moto's in-process backends do not make a conditional write atomic against another thread's; the real
    # DynamoDB does. One lock restores that (every call to the stand-in is in this process anyway).
    atomic = threading.Lock()

    def counted(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        if getattr(self, "bench_internal", False):  # the bench's own calls (setup, the event-source mapping's)
            with atomic:
                return original(self, operation_name, api_params)
        started = time.perf_counter()
        try:
            with atomic:
                return original(self, operation_name, api_params)
        finally:
            service = str(self.meta.service_model.service_name)
            log.add(Call("aws", service, operation_name, api_params, time.perf_counter() - started))

    setattr(BaseClient, _SEND, counted)
    try:
        yield
    finally:
        setattr(BaseClient, _SEND, original)


# ---- 8x8 stand-in ------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Signer:
    """Signs webhook deliveries the way the contract describes (RS256 JWS, detached unencoded payload)."""

    def __init__(self, kid: str = "bench-kid") -> None:
        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict[str, str]:
        numbers = self.key.public_key().public_numbers()

        def encode(value: int) -> str:
            return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))

        return {
            "kty": "RSA",
            "kid": self.kid,
            "alg": "RS256",
            "use": "sig",
            "n": encode(numbers.n),
            "e": encode(numbers.e),
        }

    def headers(self, body: bytes, event_id: str, retry: int = 0, tt: int | None = None) -> dict[str, str]:
        tt = int(time.time() * 1000) if tt is None else tt
        header = {"b64": False, "crit": ["b64"], "kid": self.kid, "alg": "RS256"}
        protected = b64url(json.dumps(header, separators=(",", ":")).encode())
        payload = json.dumps(
            {
                "checksum": zlib.crc32(body) & 0xFFFFFFFF,
                "cid": CUSTOMER,
                "eid": event_id,
                "retry": retry,
                "tid": TENANT,
                "tt": tt,
            },
            separators=(",", ":"),
        ).encode()
        signature = self.key.sign(protected.encode() + b"." + payload, padding.PKCS1v15(), hashes.SHA256())
        return {
            "X-8x8-Signature": f"{protected}..{b64url(signature)}",
            "X-8x8-Event-Id": event_id,
            "X-8x8-Retry": str(retry),
            "X-8x8-Transmission-Time": str(tt),
            "X-8x8-Tenant-Id": TENANT,
            "X-8x8-Customer-Id": CUSTOMER,
            "Content-Type": "application/json",
        }


class Fake8x8:
    """Answers the Chat API v2 calls the connector makes and logs each one by operation."""

    def __init__(self, log: CallLog, signer: Signer, token_lifetime_s: int = 3600, token_delay_s: float = 0.0) -> None:
        self.log = log
        self.signer = signer
        self.token_lifetime_s = token_lifetime_s
        self.token_delay_s = token_delay_s
        self._n = 0
        self._lock = threading.Lock()

    def _next(self) -> int:
        with self._lock:
            self._n += 1
            return self._n

    def _logged(self, operation: str, answer: Callable[[Any], tuple[int, dict[str, str], str]]) -> Any:
        def callback(request: Any) -> tuple[int, dict[str, str], str]:
            started = time.perf_counter()
            try:
                return answer(request)
            finally:
                self.log.add(Call("8x8", "8x8", operation, {"url": request.url}, time.perf_counter() - started))

        return callback

    def _token(self, _request: Any) -> tuple[int, dict[str, str], str]:
        if self.token_delay_s:
            time.sleep(self.token_delay_s)
        body = {"access_token": f"tok-{self._next()}", "token_type": "bearer", "expires_in": str(self.token_lifetime_s)}
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    def _conversation(self, _request: Any) -> tuple[int, dict[str, str], str]:
        return 202, {"Content-Type": "application/json"}, json.dumps({"conversationId": f"conv-{self._next()}"})

    @staticmethod
    def _accepted(_request: Any) -> tuple[int, dict[str, str], str]:
        return 202, {"Content-Type": "application/json"}, "{}"

    @staticmethod
    def _left(_request: Any) -> tuple[int, dict[str, str], str]:
        return 204, {}, ""

    def _jwk(self, _request: Any) -> tuple[int, dict[str, str], str]:
        return 200, {"Content-Type": "application/json"}, json.dumps(self.signer.jwk())

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        tenant = re.escape(f"{BASE_URL}/vcc/{CC_REGION}/chat/v2/tenant/{TENANT}")
        mock = responses.RequestsMock(assert_all_requests_are_fired=False)
        mock.add_callback("POST", f"{BASE_URL}/oauth/v2/token", callback=self._logged("token", self._token))
        mock.add_callback(
            "POST",
            re.compile(tenant + r"/conversations$"),
            callback=self._logged("create_conversation", self._conversation),
        )
        mock.add_callback(
            "POST",
            re.compile(tenant + r"/conversations/[^/]+/messages$"),
            callback=self._logged("post_message", self._accepted),
        )
        mock.add_callback(
            "DELETE",
            re.compile(tenant + r"/conversations/[^/]+/participants/customer$"),
            callback=self._logged("customer_leaves", self._left),
        )
        mock.add_callback(
            "GET",
            re.compile(re.escape(f"{BASE_URL}/vcc/{CC_REGION}/chat/v2/jwk/") + r"[^/]+/public$"),
            callback=self._logged("jwk", self._jwk),
        )
        with mock:
            yield


# ---- AWS stand-in ------------------------------------------------------------------------------


@dataclass
class Resources:
    queue_url: str
    dlq_url: str
    queue_arn: str
    secret_arn: str


def create_resources() -> Resources:
    """What template.yaml creates, in moto (mock_aws must be active)."""
    dynamodb = internal_client("dynamodb")
    dynamodb.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    )
    sqs = internal_client("sqs")
    fifo = {"FifoQueue": "true", "ContentBasedDeduplication": "false", "VisibilityTimeout": "120"}
    dlq_url = sqs.create_queue(QueueName="bench-outbound-dlq.fifo", Attributes=dict(fifo))["QueueUrl"]
    queue_url = sqs.create_queue(QueueName="bench-outbound.fifo", Attributes=dict(fifo))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    internal_client("events").create_event_bus(Name=BUS)
    secret_arn = internal_client("secretsmanager").create_secret(
        Name=SECRET_NAME, SecretString=json.dumps({"apiKey": "bench-key", "apiSecret": "bench-secret"})
    )["ARN"]
    os.environ["OUTBOUND_QUEUE_URL"] = queue_url
    os.environ["OUTBOUND_DLQ_URL"] = dlq_url
    os.environ["EIGHTXEIGHT_SECRET_ARN"] = secret_arn
    return Resources(queue_url, dlq_url, queue_arn, secret_arn)


def internal_client(service: str) -> Any:
    """A client for the bench's own calls (not counted): creating resources, playing the SQS poller."""
    client = boto3.client(service, region_name=REGION)  # type: ignore[call-overload]
    client.bench_internal = True
    return client


def cold_container() -> None:
    """Forget everything a Lambda container keeps between invocations (settings, clients, services, caches)."""
    settings.get_settings.cache_clear()
    aws.reset_clients()
    services.set_services(None)
    parameters.clear_caches()  # type: ignore[no-untyped-call]
    vars(parameters.base)["DEFAULT_PROVIDERS"].clear()  # their boto3 clients were made for the last stand-in


# ---- the functions and their events ------------------------------------------------------------


def load_function(name: str) -> ModuleType:
    """functions/<name>/app.py as its own module (all three are called `app`)."""
    path = REPO / "functions" / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"bench_fn_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class LambdaContext:
    function_name: str = "casebridge-bench"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:casebridge-bench"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    log_group_name: str = "/aws/lambda/casebridge-bench"
    log_stream_name: str = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 20_000


def api_event(
    method: str,
    resource: str,
    params: dict[str, str] | None = None,
    body: str | bytes | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway REST (v1 proxy) event for `resource` (e.g. /cases/{caseId}/messages)."""
    path = resource
    for name, value in (params or {}).items():
        path = path.replace("{" + name + "}", value)
    raw = body.encode() if isinstance(body, str) else body
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": hdrs,
        "multiValueHeaders": {k: [v] for k, v in hdrs.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": params or None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/v1{path}",
            "stage": "v1",
            "requestId": "bench-request",
            "identity": {"sourceIp": "127.0.0.1", "userAgent": "bench"},
        },
        "body": None if raw is None else raw.decode(),
        "isBase64Encoded": False,
    }


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """What the SQS event-source mapping hands the function, from messages received with all attributes."""
    records = []
    for message in messages:
        attributes = dict(message.get("Attributes", {}))
        attributes.setdefault("ApproximateReceiveCount", "1")
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
        )
    return {"Records": records}


def webhook_body(event_type: str, conversation_id: str, **extra: Any) -> bytes:
    payload: dict[str, Any] = {
        "eventType": event_type,
        "messageType": "AGENT" if event_type == "TEXT" else "SYSTEM",
        "conversationId": conversation_id,
        "timestamp": int(time.time() * 1000),
        **extra,
    }
    return json.dumps(payload, separators=(",", ":")).encode()


WEBHOOK_EXTRA: dict[str, dict[str, Any]] = {
    "QUEUED": {"queueId": "q-1", "queueName": "Support"},
    "AGENT_JOINED": {"agentId": "a-1", "agentName": "Ada"},
    "TEXT": {"agentId": "a-1", "agentName": "Ada", "message": "Hello, how can I help?"},
    "TRANSFER": {},
    "AGENT_LEFT": {"agentId": "a-1", "agentName": "Ada"},
}
