"""The channel push's local parts: the template's EventBridge rules that invoke a function, and a local channel
webhook receiver.

**EventBridge rule → function.** moto's EventBridge cannot invoke a function in this process, so each
`Type: EventBridgeRule` event becomes a rule (same bus, same pattern) whose target is a queue in moto, read by a
thread that invokes the function with each event, several at once and in no promised order, as Lambda's
asynchronous invokes do: an invocation that raises leaves the event on the queue and it comes again
(EventBridge's retry policy).

**Webhook receiver.** A small HTTPS-less endpoint for the stack's ChannelWebhookUrl: it verifies every
delivery with the `standardwebhooks` library (as a channel would), keeps it, and answers what a test scripts
(e.g. 500 then 200).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from scripts.local_stack.functions import MAX_CONTAINERS, LocalFunction

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_sqs import SQSClient

RETRY_VISIBILITY_S = 1  # an invocation that failed is tried again after this (EventBridge backs off similarly)


@dataclass
class EventBridgeTarget:
    function: LocalFunction
    sqs: SQSClient
    events: EventBridgeClient
    bus_name: str
    pattern: dict[str, Any]
    name: str
    errors: list[str] = field(default_factory=list)
    invocations: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    queue_url: str = ""
    # Lambda's asynchronous invokes run side by side (in no promised order): up to MAX_CONTAINERS at once.
    _pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(MAX_CONTAINERS, "rule-target"))

    def start(self) -> None:
        self.queue_url = self.sqs.create_queue(
            QueueName=self.name, Attributes={"VisibilityTimeout": str(RETRY_VISIBILITY_S)}
        )["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.events.put_rule(
            Name=self.name, EventBusName=self.bus_name, EventPattern=json.dumps(self.pattern), State="ENABLED"
        )
        self.events.put_targets(Rule=self.name, EventBusName=self.bus_name, Targets=[{"Id": "function", "Arn": arn}])
        self._thread = threading.Thread(target=self._run, name=f"rule-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                answer = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            except Exception as error:
                self.errors.append(f"{type(error).__name__}: {error}")
                self._stop.wait(0.5)
                continue
            for message in answer.get("Messages", []):
                self.invocations += 1
                self._pool.submit(self._invoke, message["Body"], message["ReceiptHandle"])

    def _invoke(self, body: str, receipt_handle: str) -> None:
        try:
            self.function.invoke(json.loads(body))
        except Exception:
            return  # stays on the queue: invoked again after the visibility timeout
        try:
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=receipt_handle)
        except Exception as error:
            self.errors.append(f"{type(error).__name__}: {error}")


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: dict[str, Any]
    status: int  # what the receiver answered
    received: float

    @property
    def event(self) -> dict[str, Any]:
        data: dict[str, Any] = self.body.get("data") or {}
        return data


class WebhookReceiver:
    """`WebhookReceiver().start()`; `url` is the ChannelWebhookUrl. `secret` must be set before deliveries
    arrive (the stack reads it from its Secrets Manager secret). `script(case_id, [500, 200])` sets what the
    next deliveries of that case are answered, in order (an answer may be `(status, {"Retry-After": "1"})`);
    then 204."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.secret = ""
        self._answers: dict[str, list[int | tuple[int, dict[str, str]]]] = {}
        self._delays: dict[str, float] = {}
        self.deliveries: list[Delivery] = []
        self.refused: list[str] = []  # deliveries whose signature did not verify
        self.on_delivery: Callable[[Delivery], None] | None = None
        self._cond = threading.Condition()
        self._httpd = ThreadingHTTPServer((host, port), self._handler())
        self._httpd.daemon_threads = True
        self.url = f"http://{host}:{self._httpd.server_address[1]}/casebridge-events"

    def start(self) -> WebhookReceiver:
        threading.Thread(target=self._httpd.serve_forever, name="webhook-receiver", daemon=True).start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def script(self, case_id: str, answers: list[int | tuple[int, dict[str, str]]]) -> None:
        with self._cond:
            self._answers[case_id] = list(answers)

    def slow(self, case_id: str, seconds: float) -> None:
        """Answer every delivery of the case only after `seconds` (a slow channel)."""
        with self._cond:
            self._delays[case_id] = seconds

    def for_case(self, case_id: str) -> list[Delivery]:
        """Every delivery of the case (whatever it was answered), in arrival order."""
        with self._cond:
            return [d for d in self.deliveries if d.event.get("caseId") == case_id]

    def verified(self, case_id: str | None = None) -> list[Delivery]:
        """The deliveries answered 2xx (for one case), in arrival order."""
        with self._cond:
            return [
                d
                for d in self.deliveries
                if 200 <= d.status < 300 and (case_id is None or d.event.get("caseId") == case_id)
            ]

    def wait_for(self, what: Callable[[list[Delivery]], bool], timeout: float = 10.0) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not what(self.deliveries):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(d.event.get("type"), d.status) for d in self.deliveries]
                    raise TimeoutError(f"the webhook receiver did not get what was awaited within {timeout:g}s: {seen}")
                self._cond.wait(remaining)
            return list(self.deliveries)

    def _take(self, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, str]]:
        try:
            body = Webhook(self.secret).verify(raw, headers)
        except (WebhookVerificationError, ValueError) as error:
            self.refused.append(str(error))
            return 401, {}
        case_id = str((body.get("data") or {}).get("caseId"))
        with self._cond:
            delay = self._delays.get(case_id, 0.0)
        if delay:
            time.sleep(delay)  # the channel is slow (the sender waits; nothing else should)
        with self._cond:
            script = self._answers.get(case_id, [])
            answer = script.pop(0) if script else 204
            status, extra = answer if isinstance(answer, tuple) else (answer, {})
            delivery = Delivery(headers, body, status, time.time())
            self.deliveries.append(delivery)
            self._cond.notify_all()
        if self.on_delivery is not None and 200 <= status < 300:
            self.on_delivery(delivery)
        return status, extra

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, extra = receiver._take({k.lower(): v for k, v in self.headers.items()}, raw)
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Handler
