"""The bench's stand-ins: AWS in-process (moto), a fake 8x8 that counts its calls, and a counter of every call the
connector's code makes. The plumbing the tests use too (function loader, Lambda context, API Gateway and SQS events,
the webhook signer, template.yaml's resources in moto) comes from tests/support, run from the repository's root.

Nothing here changes the connector's code paths: AWS calls are counted where every botocore client sends
them (`BaseClient._make_api_call`), 8x8 calls where the HTTP transport would send them (`responses`).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import requests
import responses
from botocore.client import BaseClient

from tests.support.aws import AwsResources, ResourceNames, create_resources
from tests.support.connector import reset_casebridge
from tests.support.signing import WebhookSigner, new_rsa_key

REPO = Path(__file__).resolve().parents[2]


def add_paths() -> None:
    """The layer and the emulator, importable as Lambda and pytest make them (`python -m scripts.bench` is an
    entry point: nothing else puts them on the path)."""
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
NAMES = ResourceNames()  # the tests' names: each figure starts from an empty moto account anyway
TABLE = NAMES.table
BUS = NAMES.bus

LAMBDA_ENV = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",  # moto's stand-in credentials, not a secret
    "CASES_TABLE_NAME": TABLE,
    "EVENT_BUS_NAME": BUS,
    "EIGHTXEIGHT_BASE_URL": BASE_URL,
    "EIGHTXEIGHT_API": "chat-api-v2",
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


# ---- AWS stand-in as a server -------------------------------------------------------------------


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """moto as a local HTTP endpoint (its own threads): every AWS call goes through botocore's real serialising,
    signing and HTTP stack, as on Lambda, and the CPU the server spends is not in the calling thread's time."""
    from moto.server import ThreadedMotoServer  # noqa: PLC0415 - werkzeug and flask only when a server runs

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per call otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # moto keeps its state per process, not per server: each figure starts from an empty account.
    requests.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()
    previous = os.environ.get("AWS_ENDPOINT_URL")
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    try:
        yield endpoint
    finally:
        if previous is None:
            os.environ.pop("AWS_ENDPOINT_URL", None)
        else:
            os.environ["AWS_ENDPOINT_URL"] = previous
        server.stop()


# ---- 8x8 stand-in ------------------------------------------------------------------------------


def new_signer() -> WebhookSigner:
    """Signs webhook deliveries the way the contract describes, for the bench's tenant (tests/support/signing.py)."""
    return WebhookSigner(new_rsa_key(), "bench-kid", tenant_id=TENANT, customer_id=CUSTOMER)


def webhook_headers(signer: WebhookSigner, body: bytes, event_id: str) -> dict[str, str]:
    """What 8x8 sends with a webhook body: the signature headers and the body's type."""
    return {**signer.headers(body, event_id=event_id), "Content-Type": "application/json"}


# A `responses` callback body: (status, headers, body text).
Answer = Callable[[Any], tuple[int, dict[str, str], str]]


class Fake8x8:
    """Answers the Chat API v2 calls the connector makes and logs each one by operation."""

    def __init__(
        self, log: CallLog, signer: WebhookSigner, token_lifetime_s: int = 3600, token_delay_s: float = 0.0
    ) -> None:
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

    def _logged(self, operation: str, answer: Answer) -> Any:
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
        return 200, {"Content-Type": "application/json"}, json.dumps(self.signer.public_jwk)

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        tenant = re.escape(f"{BASE_URL}/vcc/{CC_REGION}/chat/v2/tenant/{TENANT}")
        mock = responses.RequestsMock(assert_all_requests_are_fired=False)
        jwk = re.escape(f"{BASE_URL}/vcc/{CC_REGION}/chat/v2/jwk/") + r"[^/]+/public$"
        routes: list[tuple[str, str | re.Pattern[str], str, Answer]] = [
            ("POST", f"{BASE_URL}/oauth/v2/token", "token", self._token),
            ("POST", re.compile(tenant + r"/conversations$"), "create_conversation", self._conversation),
            ("POST", re.compile(tenant + r"/conversations/[^/]+/messages$"), "post_message", self._accepted),
            (
                "DELETE",
                re.compile(tenant + r"/conversations/[^/]+/participants/customer$"),
                "customer_leaves",
                self._left,
            ),
            ("GET", re.compile(jwk), "jwk", self._jwk),
        ]
        for method, url, name, handler in routes:
            mock.add_callback(method, url, callback=self._logged(name, handler))
        with mock:
            yield


# ---- AWS stand-in ------------------------------------------------------------------------------


def create_bench_resources() -> AwsResources:
    """What template.yaml creates, in moto (mock_aws must be active), made with clients the bench does not count;
    the functions' environment points at them."""
    resources = create_resources(NAMES, client=internal_client, credentials=("bench-key", "bench-secret"))
    os.environ.update(resources.environment())
    return resources


def internal_client(service: str) -> Any:
    """A client for the bench's own calls (not counted): creating resources, playing the SQS poller."""
    client = boto3.client(service, region_name=REGION)  # type: ignore[call-overload]
    client.bench_internal = True
    return client


def cold_container() -> None:
    """Forget everything a Lambda container keeps between invocations (settings, clients, services, caches)."""
    reset_casebridge(parameters=True)
