"""Test harness for the delivery guarantees: the real handlers (functions/*/app.py), AWS via moto, 8x8 via
the offline emulator over real HTTP.

- `WebhookBridge` is a real HTTP server (the emulator's webhook receiver) that turns the emulator's webhook POSTs
  into API Gateway REST events for the webhook handler (what API Gateway does in AWS), and records every request
  so it can be replayed.
- `Harness.drain` is the SQS event source mapping in miniature: receive from the moto FIFO queue, call the
  outbound handler with an SQS event, delete what succeeded, leave batchItemFailures (their visibility is
  whatever the handler set: the backoff delay).
- `AwsFaults` injects DynamoDB throttling (before the retry handler, so botocore's own retries apply) and
  EventBridge publish failures, via botocore event hooks.
"""
# ruff: noqa: PLC0415 - imports that must wait for moto, the environment or sys.path

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders

from cc_emulator import EmulatorServer
from cc_emulator.pytest_plugin import ReceivedRequest, WebhookReceiver
from tests.support.aws import REGION, AwsResources
from tests.support.connector import reset_casebridge
from tests.support.events import api_gateway_event, sqs_event, webhook_event
from tests.support.lambdas import LambdaContext, load_function
from tests.support.signing import WebhookSigner

CONTACT_CENTER_APIS = ("chat-gateway-v1", "chat-api-v2")
# The connector's 8x8 timeout in these tests: short, so hang faults play out fast, yet wide of what stalls a plain
# answer on a busy 2-core machine (a full garbage collection was measured at 0.9 s mid-suite). A fault that must
# outlast it outlasts it by as much again.
HTTP_TIMEOUT_S = 1.5
PAST_TIMEOUT_S = 2 * HTTP_TIMEOUT_S
# Modules whose guarantees must hold on both 8x8 APIs mark themselves with this (the fault matrix, the
# concurrency tests, delivery, the lifecycle model); the rest run on Chat API v2, whose flat events they sign.
both_apis = pytest.mark.parametrize("contact_center_api", CONTACT_CENTER_APIS, indirect=True)


class Crash(BaseException):
    """The Lambda container died here (nothing after this point ran, nothing was answered)."""


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
        return AWSResponse(request.url, 400, HTTPHeaders.from_dict({"x-amzn-requestid": str(uuid.uuid4())}), _raw(body))

    def _before_put_events(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        body = params["body"]
        params = json.loads(body.decode() if isinstance(body, bytes) else body)
        with self._lock:
            if self.publish_failures > 0:
                self.publish_failures -= 1
                entries = [{"ErrorCode": "InternalFailure", "ErrorMessage": "injected"} for _ in params["Entries"]]
                return AWSResponse("https://events", 200, HTTPHeaders(), _raw(b"{}")), {
                    "FailedEntryCount": len(entries),
                    "Entries": entries,
                    "ResponseMetadata": {"HTTPStatusCode": 200},
                }
            for entry in params["Entries"]:
                self.published.append({"DetailType": entry["DetailType"], **json.loads(entry["Detail"])})
        return None


# ---- the webhook side ----------------------------------------------------------------------------------


class WebhookBridge:
    """API Gateway in front of the webhook Lambda: the emulator's webhook receiver (real HTTP, recording every
    request so it can be replayed) answers with what the webhook handler answers to the API Gateway event."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # one container handles one request at a time
        self.crash_next: int = 0  # simulated crashes of the container (API Gateway then answers 502)
        self.closed = False
        self._receiver = WebhookReceiver(responder=self._respond)

    @property
    def requests(self) -> list[ReceivedRequest]:
        return self._receiver.requests

    def call(self, headers: Mapping[str, str], body: bytes, force_base64: bool = False) -> dict[str, Any]:
        app = load_function("webhook_intake")
        forwarded = {k: v for k, v in headers.items() if k.lower().startswith("x-8x8") or k.lower() == "content-type"}
        with self.lock:
            if self.closed:  # the test is over: late emulator deliveries must not rebuild casebridge's services
                raise Crash("bridge closed")
            if self.crash_next > 0:
                self.crash_next -= 1
                raise Crash("webhook container died")
            answer: dict[str, Any] = app.lambda_handler(
                webhook_event(forwarded, body, force_base64=force_base64), LambdaContext()
            )
        return answer

    def _respond(self, request: ReceivedRequest) -> int:
        try:
            return int(self.call(request.headers, request.body)["statusCode"])
        except Crash:
            return 502

    def start(self) -> str:
        return self._receiver.start()

    def stop(self) -> None:
        with self.lock:  # waits for a call in flight
            self.closed = True
        self._receiver.stop()


# ---- the harness ---------------------------------------------------------------------------------------


@dataclass
class DrainStats:
    invocations: int = 0
    crashes: int = 0
    failures_reported: int = 0
    receive_times: dict[str, list[float]] = field(default_factory=dict)  # messageId -> receive times


class Harness:
    _mp: pytest.MonkeyPatch  # the fault matrix's patches of the current scenario

    def __init__(
        self,
        emulator: EmulatorServer,
        bridge: WebhookBridge,
        resources: AwsResources,
        faults: AwsFaults,
        metrics: MetricsRecorder,
    ) -> None:
        self.emulator = emulator
        self.engine = emulator.engine
        self.bridge = bridge
        self.resources = resources
        self.faults = faults
        self.metrics = metrics
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.dynamodb = boto3.client("dynamodb", region_name=REGION)
        self.outbound = load_function("outbound_sender")
        self.lifecycle = load_function("conversation_lifecycle")
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
            api_gateway_event(
                "POST",
                "/cases/{caseId}/messages",
                body=json.dumps(body),
                path_parameters={"caseId": case_id},
                headers={"Content-Type": "application/json"},
            ),
            LambdaContext(),
        )
        assert answer["statusCode"] == 202, answer
        result: dict[str, Any] = json.loads(answer["body"])
        return result

    def open_case(self, case_id: str, copy: str = "") -> dict[str, Any]:
        app = load_function("conversation_lifecycle", copy) if copy else self.lifecycle
        answer: dict[str, Any] = app.lambda_handler(
            api_gateway_event(
                "POST",
                "/cases/{caseId}/conversation",
                body=json.dumps({"customer": {"name": "Jane Doe"}}),
                path_parameters={"caseId": case_id},
            ),
            LambdaContext(),
        )
        return answer

    def leave_case(self, case_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.lifecycle.lambda_handler(
            api_gateway_event(
                "DELETE",
                "/cases/{caseId}/conversation",
                path_parameters={"caseId": case_id},
            ),
            LambdaContext(),
        )
        return answer

    def case(self, case_id: str) -> dict[str, Any]:
        """The business API's view of a case that exists."""
        view = self.get_case(case_id)
        assert view is not None, f"case {case_id} not found"
        return view

    def get_case(self, case_id: str) -> dict[str, Any] | None:
        answer = self.lifecycle.lambda_handler(
            api_gateway_event("GET", "/cases/{caseId}", path_parameters={"caseId": case_id}),
            LambdaContext(),
        )
        if answer["statusCode"] == 404:
            return None
        assert answer["statusCode"] == 200, answer
        result: dict[str, Any] = json.loads(answer["body"])
        return result

    def crash_after_next_send(self, monkeypatch: pytest.MonkeyPatch, why: str) -> None:
        """The sender's next message reaches 8x8, then its container dies (before anything is recorded)."""
        from casebridge.services import get_services

        client = get_services().contact_center
        original = client.send_message
        crashes = [1]

        def send_then_crash(conversation_id: str, text: str, author_type: str) -> None:
            original(conversation_id, text, author_type)
            if crashes:
                crashes.pop()
                raise Crash(why)

        monkeypatch.setattr(client, "send_message", send_then_crash)

    # -- the queue side ---------------------------------------------------------------------------------
    def _queue_depth(self, url: str) -> int:
        answer = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
        attrs = {str(k): v for k, v in answer["Attributes"].items()}
        return sum(
            int(attrs.get(a, "0"))
            for a in (
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            )
        )

    def queue_depth(self) -> int:
        return self._queue_depth(self.resources.queue_url)

    def dlq_depth(self) -> int:
        return self._queue_depth(self.resources.dlq_url)

    def drain(
        self, timeout: float = 30.0, stats: DrainStats | None = None, max_batches: int | None = None
    ) -> DrainStats:
        """Deliver until the outbound queue is empty (the Lambda event source mapping, in miniature)."""
        stats = stats or DrainStats()
        url = self.resources.queue_url
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
            for m in got:
                stats.receive_times.setdefault(json.loads(m["Body"])["messageId"], []).append(now)
            stats.invocations += 1
            try:
                answer = self.outbound.lambda_handler(sqs_event(got, self.resources.queue_arn), LambdaContext())
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

    def _release_skipped(self, got: Sequence[Mapping[str, Any]], failed: set[str]) -> None:
        """Records skipped behind a failed one of their group (never attempted) go back at once. Real SQS FIFO
        keeps a group's order whatever their visibility; moto returns a group's later messages first when earlier
        ones become visible in the same pass, so without this the driver, not the connector, would reorder."""
        for m in got:
            if m["MessageId"] in failed and m["ReceiptHandle"] not in self.deferred:
                self.sqs.change_message_visibility(
                    QueueUrl=self.resources.queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
                )

    def redrive(self) -> int:
        from scripts.redrive import redrive

        return redrive(self.sqs, self.resources.dlq_url, self.resources.queue_url)

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
        kwargs: dict[str, Any] = {"TableName": self.resources.table, "ConsistentRead": True}
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

    def wait_for_late_answer(self, op: str, timeout: float = 30.0) -> None:
        """Wait until 8x8 has processed the request a latency fault slowed down (the emulator logs it then): the
        late original has landed."""
        deadline = time.monotonic() + timeout
        while not any(r.op == op and r.fault == "latency" for r in list(self.engine.requests)):
            assert time.monotonic() < deadline, f"the slowed {op} never ended"
            time.sleep(0.05)

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until the emulator has no agent action or webhook delivery pending."""
        self.emulator.wait_quiet(timeout)


@contextlib.contextmanager
def env_overrides(monkeypatch: pytest.MonkeyPatch, **values: str) -> Iterator[None]:
    """Change settings, and make every cached piece (settings, services, clients) pick them up."""
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    reset_casebridge()
    yield


# ---- signing deliveries as 8x8 does (with the emulator's active key) -----------------------------------


def signed_headers(emulator: EmulatorServer, body: bytes, **sign: Any) -> dict[str, str]:
    """The six x-8x8-* headers for `body` (and its Content-Type), signed with the emulator's active key by the
    independent signer (tests/support/signing.py); `sign` as WebhookSigner.headers takes it."""
    key = emulator.engine.keys.active
    signer = WebhookSigner(
        key.private_key, key.kid, tenant_id=emulator.config.tenant_id, customer_id=emulator.config.customer_id
    )
    return {**signer.headers(body, **sign), "Content-Type": "application/json"}


def connect_harness(
    emulator: EmulatorServer,
    bridge: WebhookBridge,
    bridge_url: str,
    resources: AwsResources,
    metrics: MetricsRecorder,
    monkeypatch: pytest.MonkeyPatch,
    api: str,
) -> Harness:
    """Provisions a channel whose webhook is `bridge`, points the connector at it and attaches the AWS faults.

    The caller has set the connector's other EIGHTXEIGHT_* variables and started the bridge."""
    _, channel_id = emulator.provision(bridge_url, "101", version=api)
    emulator.wait_for_delivery("WEB_HOOK_VERIFY")
    monkeypatch.setenv("EIGHTXEIGHT_CHANNEL_ID", channel_id)
    reset_casebridge()
    from casebridge import services

    built = services.get_services()
    faults = AwsFaults()
    faults.attach(built.store.client, built.publisher.client)
    return Harness(emulator, bridge, resources, faults, metrics)
