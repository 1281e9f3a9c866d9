"""Test harness for the delivery guarantees: the real handlers (functions/*/app.py), AWS via moto, 8x8 via
the offline emulator over real HTTP.

- `load_app` imports a handler module under a unique name (the three handlers are all called app.py).
- `WebhookBridge` is a real HTTP server that turns the emulator's webhook POSTs into API Gateway REST events
  for the webhook handler (what API Gateway does in AWS), and records every request so it can be replayed.
- `Harness.drain` is the SQS event source mapping in miniature: receive from the moto FIFO queue, call the
  outbound handler with an SQS event, delete what succeeded, leave batchItemFailures (their visibility is
  whatever the handler set: the backoff delay).
- `AwsFaults` injects DynamoDB throttling (before the retry handler, so botocore's own retries apply) and
  EventBridge publish failures, via botocore event hooks.
"""
# ruff: noqa: PLC0415 - imports that must wait for moto, the environment or sys.path

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
TABLE = "casebridge-test-cases"
BUS = "casebridge-test-bus"
SECRET = "casebridge-test-8x8"


class Crash(BaseException):
    """The Lambda container died here (nothing after this point ran, nothing was answered)."""


class FakeContext:
    function_name = "casebridge-test"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:casebridge-test"
    log_group_name = "/aws/lambda/casebridge-test"
    log_stream_name = "test"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 20_000


_loaded: dict[str, ModuleType] = {}


def load_app(function: str, copy: str = "") -> ModuleType:
    """functions/<function>/app.py as a module of its own (`copy` gives another 'container')."""
    name = f"cb_app_{function}{copy}"
    if name not in _loaded:
        spec = importlib.util.spec_from_file_location(name, ROOT / "functions" / function / "app.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        _loaded[name] = module
    return _loaded[name]


def api_event(
    method: str,
    path: str,
    *,
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    resource: str | None = None,
    path_parameters: dict[str, str] | None = None,
    force_base64: bool = False,
) -> dict[str, Any]:
    """An API Gateway REST (v1) proxy event, as API Gateway builds it."""
    encoded = False
    text: str | None
    if body is None:
        text = None
    elif isinstance(body, str):
        text = body
    else:
        try:
            text = body.decode("utf-8")
            if force_base64:
                raise UnicodeDecodeError("utf-8", b"", 0, 1, "forced")
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(body).decode(), True
    hdrs = dict(headers or {})
    return {
        "resource": resource or path,
        "path": path,
        "httpMethod": method,
        "headers": hdrs,
        "multiValueHeaders": {k: [v] for k, v in hdrs.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource or path,
            "httpMethod": method,
            "path": f"/Prod{path}",
            "stage": "Prod",
            "requestId": str(uuid.uuid4()),
            "accountId": "123456789012",
            "apiId": "testapi",
            "identity": {"sourceIp": "203.0.113.7", "userAgent": "test"},
            "requestTimeEpoch": int(time.time() * 1000),
        },
        "body": text,
        "isBase64Encoded": encoded,
    }


def webhook_event(headers: dict[str, str], body: bytes, force_base64: bool = False) -> dict[str, Any]:
    return api_event("POST", "/webhooks/8x8", body=body, headers=headers, force_base64=force_base64)


class MetricsRecorder:
    """Replaces casebridge's metrics.add_metric: thread-safe counts the tests can assert on."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, name: str, unit: Any = None, value: float = 1, **_: Any) -> None:
        with self._lock:
            self.counts[name] += int(value)


# ---- AWS faults ----------------------------------------------------------------------------------------


def _raw(body: bytes) -> Any:
    from moto.core.botocore_stubber import MockRawResponse

    return MockRawResponse(body)


@dataclass
class AwsFaults:
    """Deterministic fault plans on the connector's own boto3 clients."""

    throttle_ops: set[str] = field(default_factory=set)  # DynamoDB operation names; empty = all
    throttle_pattern: Callable[[int], bool] | None = None  # call number (1-based) -> throttle?
    dynamodb_calls: int = 0
    throttled: int = 0
    publish_failures: int = 0  # fail this many next PutEvents calls (one failed entry each)
    published: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(self, dynamodb: Any, events: Any) -> None:
        dynamodb.meta.events.register_first("before-send.dynamodb", self._dynamodb_before_send)
        events.meta.events.register_first("before-call.events.PutEvents", self._before_put_events)

    def _dynamodb_before_send(self, request: Any, **_: Any) -> AWSResponse | None:
        target = (request.headers.get("X-Amz-Target") or b"").decode() if request.headers else ""
        op = target.rsplit(".", 1)[-1]
        with self._lock:
            if self.throttle_pattern is None or (self.throttle_ops and op not in self.throttle_ops):
                return None
            self.dynamodb_calls += 1
            if not self.throttle_pattern(self.dynamodb_calls):
                return None
            self.throttled += 1
        # Every before-send handler runs (the first answer wins): point this attempt where moto's own handler
        # does not answer, or moto would carry out the throttled write as well.
        request.url = "https://throttled.invalid/"
        body = json.dumps(
            {
                "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                "message": "injected throttling",
            }
        ).encode()
        return AWSResponse(request.url, 400, {"x-amzn-requestid": str(uuid.uuid4())}, _raw(body))

    def _before_put_events(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        body = params["body"]
        params = json.loads(body.decode() if isinstance(body, bytes) else body)
        with self._lock:
            if self.publish_failures > 0:
                self.publish_failures -= 1
                entries = [{"ErrorCode": "InternalFailure", "ErrorMessage": "injected"} for _ in params["Entries"]]
                return AWSResponse("https://events", 200, {}, _raw(b"{}")), {
                    "FailedEntryCount": len(entries),
                    "Entries": entries,
                    "ResponseMetadata": {"HTTPStatusCode": 200},
                }
            for entry in params["Entries"]:
                self.published.append({"DetailType": entry["DetailType"], **json.loads(entry["Detail"])})
        return None


# ---- the webhook side ----------------------------------------------------------------------------------


@dataclass
class BridgedRequest:
    headers: dict[str, str]
    body: bytes
    status: int
    answer: str


class WebhookBridge:
    """API Gateway in front of the webhook Lambda: real HTTP in, API Gateway REST event to the handler."""

    def __init__(self) -> None:
        self.requests: list[BridgedRequest] = []
        self.lock = threading.Lock()  # one container handles one request at a time
        self.crash_next: int = 0  # simulated crashes of the container (API Gateway then answers 502)
        self.closed = False
        self._server: ThreadingHTTPServer | None = None

    def call(self, headers: dict[str, str], body: bytes, force_base64: bool = False) -> dict[str, Any]:
        app = load_app("webhook_intake")
        with self.lock:
            if self.closed:  # the test is over: late emulator deliveries must not rebuild casebridge's services
                raise Crash("bridge closed")
            if self.crash_next > 0:
                self.crash_next -= 1
                raise Crash("webhook container died")
            answer: dict[str, Any] = app.lambda_handler(webhook_event(headers, body, force_base64), FakeContext())
        return answer

    def start(self) -> str:
        bridge = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {
                    k: v for k, v in self.headers.items() if k.lower().startswith("x-8x8") or k == "Content-Type"
                }
                try:
                    answer = bridge.call(headers, body)
                    status, text = int(answer["statusCode"]), str(answer.get("body") or "")
                except Crash:
                    status, text = 502, '{"message": "Internal server error"}'
                with bridge.lock:
                    bridge.requests.append(BridgedRequest(headers, body, status, text))
                payload = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/webhooks/8x8"

    def stop(self) -> None:
        with self.lock:  # waits for a call in flight
            self.closed = True
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


# ---- the harness ---------------------------------------------------------------------------------------


@dataclass
class DrainStats:
    invocations: int = 0
    crashes: int = 0
    failures_reported: int = 0
    receive_times: dict[str, list[float]] = field(default_factory=dict)  # messageId -> receive times


class Harness:
    def __init__(self, emulator: Any, bridge: WebhookBridge, resources: dict[str, str], faults: AwsFaults) -> None:
        self.emulator = emulator
        self.engine = emulator.engine
        self.bridge = bridge
        self.resources = resources
        self.faults = faults
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.dynamodb = boto3.client("dynamodb", region_name=REGION)
        self.outbound = load_app("outbound_sender")
        self.lifecycle = load_app("conversation_lifecycle")
        self.deferred: set[str] = set()
        from casebridge.services import get_services

        queue = get_services().queue
        original_defer = queue.defer

        def defer(receipt_handle: str, seconds: float) -> None:
            self.deferred.add(receipt_handle)
            original_defer(receipt_handle, seconds)

        queue.defer = defer  # type: ignore[method-assign]

    # -- the business API ---------------------------------------------------------------------------
    def post_message(self, case_id: str, text: str, client_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"text": text}
        if client_id:
            body["clientMessageId"] = client_id
        answer = self.outbound.lambda_handler(
            api_event(
                "POST",
                f"/cases/{case_id}/messages",
                body=json.dumps(body),
                resource="/cases/{caseId}/messages",
                path_parameters={"caseId": case_id},
                headers={"Content-Type": "application/json"},
            ),
            FakeContext(),
        )
        assert answer["statusCode"] == 202, answer
        result: dict[str, Any] = json.loads(answer["body"])
        return result

    def open_case(self, case_id: str, copy: str = "") -> dict[str, Any]:
        app = load_app("conversation_lifecycle", copy) if copy else self.lifecycle
        answer: dict[str, Any] = app.lambda_handler(
            api_event(
                "POST",
                f"/cases/{case_id}/conversation",
                body=json.dumps({"customer": {"name": "Jane Doe"}}),
                resource="/cases/{caseId}/conversation",
                path_parameters={"caseId": case_id},
            ),
            FakeContext(),
        )
        return answer

    def leave_case(self, case_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.lifecycle.lambda_handler(
            api_event(
                "DELETE",
                f"/cases/{case_id}/conversation",
                resource="/cases/{caseId}/conversation",
                path_parameters={"caseId": case_id},
            ),
            FakeContext(),
        )
        return answer

    def get_case(self, case_id: str) -> dict[str, Any] | None:
        answer = self.lifecycle.lambda_handler(
            api_event("GET", f"/cases/{case_id}", resource="/cases/{caseId}", path_parameters={"caseId": case_id}),
            FakeContext(),
        )
        if answer["statusCode"] == 404:
            return None
        assert answer["statusCode"] == 200, answer
        result: dict[str, Any] = json.loads(answer["body"])
        return result

    # -- the queue side ---------------------------------------------------------------------------------
    def _queue_depth(self, url: str) -> int:
        attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        return sum(
            int(attrs.get(a, 0))
            for a in (
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            )
        )

    def queue_depth(self) -> int:
        return self._queue_depth(self.resources["queue_url"])

    def dlq_depth(self) -> int:
        return self._queue_depth(self.resources["dlq_url"])

    def drain(
        self, timeout: float = 30.0, stats: DrainStats | None = None, max_batches: int | None = None
    ) -> DrainStats:
        """Deliver until the outbound queue is empty (the Lambda event source mapping, in miniature)."""
        stats = stats or DrainStats()
        url = self.resources["queue_url"]
        deadline = time.monotonic() + timeout
        batches = 0
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"outbound queue not drained in {timeout}s (depth {self.queue_depth()})")
            if max_batches is not None and batches >= max_batches:
                return stats
            got = self.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not got:
                if self.queue_depth() == 0:
                    return stats
                time.sleep(0.02)
                continue
            batches += 1
            now = time.monotonic()
            records = []
            for m in got:
                stats.receive_times.setdefault(json.loads(m["Body"])["messageId"], []).append(now)
                records.append(
                    {
                        "messageId": m["MessageId"],
                        "receiptHandle": m["ReceiptHandle"],
                        "body": m["Body"],
                        "attributes": {
                            "ApproximateReceiveCount": m["Attributes"]["ApproximateReceiveCount"],
                            "SentTimestamp": m["Attributes"]["SentTimestamp"],
                            "SenderId": m["Attributes"].get("SenderId", "test"),
                            "ApproximateFirstReceiveTimestamp": m["Attributes"].get(
                                "ApproximateFirstReceiveTimestamp", "0"
                            ),
                            "MessageGroupId": m["Attributes"]["MessageGroupId"],
                            "MessageDeduplicationId": m["Attributes"]["MessageDeduplicationId"],
                            "SequenceNumber": m["Attributes"].get("SequenceNumber", "1"),
                        },
                        "messageAttributes": {},
                        "md5OfBody": m["MD5OfBody"],
                        "eventSource": "aws:sqs",
                        "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:casebridge-outbound.fifo",
                        "awsRegion": REGION,
                    }
                )
            stats.invocations += 1
            try:
                answer = self.outbound.lambda_handler({"Records": records}, FakeContext())
            except Crash:
                stats.crashes += 1
                # Nothing deleted: the whole batch comes back after its visibility timeout (released at once
                # here, together, which real SQS FIFO does in group order and moto does not).
                self._release_skipped(got, {m["MessageId"] for m in got})
                continue
            except Exception:  # powertools raises when every record failed: the invocation errors
                stats.failures_reported += len(got)
                self._release_skipped(got, {m["MessageId"] for m in got})
                continue
            failed = {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}
            stats.failures_reported += len(failed)
            done = [m for m in got if m["MessageId"] not in failed]
            for m in done:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            self._release_skipped(got, failed)

    def _release_skipped(self, got: list[dict[str, Any]], failed: set[str]) -> None:
        """Records skipped behind a failed one of their group (never attempted) go back at once. Real SQS FIFO
        keeps a group's order whatever their visibility; moto returns a group's later messages first when earlier
        ones become visible in the same pass, so without this the driver, not the connector, would reorder."""
        for m in got:
            if m["MessageId"] in failed and m["ReceiptHandle"] not in self.deferred:
                self.sqs.change_message_visibility(
                    QueueUrl=self.resources["queue_url"], ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
                )

    def redrive(self) -> int:
        from scripts.redrive import redrive

        return redrive(self.sqs, self.resources["dlq_url"], self.resources["queue_url"])

    # -- what 8x8 and the table hold --------------------------------------------------------------------
    def case_conversation(self, case_id: str) -> str | None:
        case = self.get_case(case_id)
        return case["conversationId"] if case else None

    def transcript_texts(self, conversation_id: str, author_types: tuple[str, ...] = ("user", "bot")) -> list[str]:
        transcript = self.engine.transcript(conversation_id)["transcript"]
        return [m["text"] for m in transcript if m["authorType"] in author_types and not m["history"]]

    def conversations_for_case(self, case_id: str) -> list[str]:
        with self.engine.lock:
            return [c.id for c in self.engine.conversations.values() if c.customer.get("caseId") == case_id]

    def table_items(self) -> list[dict[str, Any]]:
        from boto3.dynamodb.types import TypeDeserializer

        des = TypeDeserializer()
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": TABLE, "ConsistentRead": True}
        while True:
            page = self.dynamodb.scan(**kwargs)
            items.extend({k: des.deserialize(v) for k, v in i.items()} for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def timeline(self, case_id: str) -> list[dict[str, Any]]:
        return sorted(
            (i for i in self.table_items() if i["pk"] == f"CASE#{case_id}" and i["sk"].startswith("EVENT#")),
            key=lambda i: i["sk"],
        )

    def message_record(self, case_id: str, message_id: str) -> dict[str, Any] | None:
        for i in self.table_items():
            if i["pk"] == f"CASE#{case_id}" and i["sk"] == f"MESSAGE#{message_id}":
                return i
        return None

    def webhook_deliveries(self) -> list[Any]:
        """The emulator's delivery attempts of events (WEB_HOOK_VERIFY excluded)."""
        return [r for r in self.emulator.deliveries() if r.event_type != "WEB_HOOK_VERIFY"]

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until the emulator has no agent action or webhook delivery pending."""
        self.emulator.wait_quiet(timeout)


@contextlib.contextmanager
def env_overrides(monkeypatch: Any, **values: str) -> Iterator[None]:
    """Change settings, and make every cached piece (settings, services, clients) pick them up."""
    from casebridge import aws, services, settings

    for k, v in values.items():
        monkeypatch.setenv(k, v)
    settings.get_settings.cache_clear()
    services.set_services(None)
    aws.reset_clients()
    yield


# ---- signing deliveries as 8x8 does (with the emulator's active key) -----------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_headers(
    emulator: Any,
    body: bytes,
    *,
    event_id: str | None = None,
    retry: int = 0,
    tt: int | None = None,
    tenant_id: str | None = None,
    customer_id: str | None = None,
    protected: dict[str, Any] | None = None,
    sign_tenant_id: str | None = None,
) -> dict[str, str]:
    """The six x-8x8-* headers for `body`, signed with the emulator's active key (what 8x8 sends)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    from cc_emulator.signing import signature_payload

    key = emulator.engine.keys.active
    event_id = event_id or b64url(uuid.uuid4().bytes)
    tt = int(time.time() * 1000) if tt is None else tt
    tenant_id = tenant_id or emulator.config.tenant_id
    customer_id = customer_id or emulator.config.customer_id
    header = protected if protected is not None else {"b64": False, "crit": ["b64"], "kid": key.kid, "alg": "RS256"}
    segment = b64url(json.dumps(header, separators=(",", ":")).encode())
    payload = signature_payload(body, customer_id, event_id, retry, sign_tenant_id or tenant_id, tt)
    signature = key.private_key.sign(segment.encode() + b"." + payload, padding.PKCS1v15(), hashes.SHA256())
    return {
        "x-8x8-signature": f"{segment}..{b64url(signature)}",
        "x-8x8-event-id": event_id,
        "x-8x8-retry": str(retry),
        "x-8x8-transmission-time": str(tt),
        "x-8x8-tenant-id": tenant_id,
        "x-8x8-customer-id": customer_id,
        "Content-Type": "application/json",
    }


def event_body(event_type: str, conversation_id: str, timestamp: int, **extra: Any) -> bytes:
    payload = {
        "eventType": event_type,
        "messageType": "AGENT" if event_type == "TEXT" else "SYSTEM",
        "conversationId": conversation_id,
        **extra,
        "timestamp": timestamp,
    }
    return json.dumps(payload, separators=(",", ":")).encode()


EVENT_EXTRAS: dict[str, dict[str, Any]] = {
    "QUEUED": {"queueId": "101", "queueName": "Support"},
    "AGENT_JOINED": {"agentId": "agent-1", "agentName": "Alice Agent"},
    "AGENT_LEFT": {"agentId": "agent-1", "agentName": "Alice Agent"},
    "TRANSFER": {},
    "TEXT": {"agentId": "agent-1", "agentName": "Alice Agent", "message": "hello"},
}


def map_case(case_id: str, conversation_id: str) -> None:
    """A case whose conversation is already recorded (as after a successful open)."""
    from casebridge.services import get_services

    store = get_services().store
    assert store.claim_opening(case_id, 30_000)
    store.record_conversation(case_id, conversation_id, "ch-1")
