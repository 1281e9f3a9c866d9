"""Figure 1: calls per operation, counted while the real handlers run (moto for AWS, a counting fake 8x8)."""

from __future__ import annotations

import contextlib
import functools
import json
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from casebridge import services
from casebridge.store import CaseStore
from scripts.bench import harness as h
from tests.support.aws import AwsResources
from tests.support.events import EVENT_EXTRAS, api_gateway_event, sqs_event, webhook_body, webhook_event
from tests.support.lambdas import FUNCTIONS, LambdaContext, load_function
from tests.support.signing import WebhookSigner

JSON = {"Content-Type": "application/json"}


@dataclass
class Row:
    name: str
    calls: Counter[str]
    code_ms: float  # CPU of the invoking thread per run: our code, botocore, requests (servers run elsewhere)
    target: str = ""
    met: bool | None = None
    runs: int = 1
    units: dict[str, float] = field(default_factory=dict)  # DynamoDB RRU / WRU per run

    def of(self, service: str, operation: str | None = None) -> int:
        return sum(
            n
            for key, n in self.calls.items()
            if key.split(".")[0] == service and (operation is None or key.split(".")[1] == operation)
        )

    @property
    def aws(self) -> int:
        return sum(n for key, n in self.calls.items() if not key.startswith("8x8."))

    @property
    def cc(self) -> int:
        """8x8 calls, token and JWK requests included."""
        return self.of("8x8")


def capacity_units(calls: list[h.Call]) -> dict[str, float]:
    """DynamoDB request units billed on demand for these calls (items assumed <= 1 KB to write, 4 KB to read)."""
    rru = wru = 0.0
    for call in calls:
        if call.service != "dynamodb":
            continue
        p = call.params
        consistent = 1.0 if p.get("ConsistentRead") else 0.5
        if call.operation == "GetItem":
            rru += consistent
        elif call.operation == "BatchGetItem":
            for request in p["RequestItems"].values():
                rru += len(request["Keys"]) * (1.0 if request.get("ConsistentRead") else 0.5)
        elif call.operation == "Query":
            rru += consistent
        elif call.operation in ("PutItem", "UpdateItem", "DeleteItem"):
            wru += 1
        elif call.operation == "TransactWriteItems":
            wru += 2 * len(p["TransactItems"])  # a transactional write costs 2 WRU per item
    return {"RRU": rru, "WRU": wru}


class Scenarios:
    """Drives the three functions' real lambda_handlers through one case's life."""

    def __init__(self, log: h.CallLog, resources: AwsResources, signer: WebhookSigner) -> None:
        self.log = log
        self.res = resources
        self.signer = signer
        self.fns: dict[str, ModuleType] = {name: load_function(name) for name in FUNCTIONS}
        h.silence_function_logs()
        self.context = LambdaContext()
        self._event_n = 0
        self._bodies: dict[str, bytes] = {}
        self.bench_s = 0.0  # CPU of the bench's own work inside a measured run (the SQS poller's calls)
        self.conversations: dict[str, str] = {}
        self.sqs = h.internal_client("sqs")
        self.containers: dict[str, services.Services | None] = {}
        self.reader = CaseStore(h.TABLE, client=h.internal_client("dynamodb"))

    # -- one invocation each -------------------------------------------------------------------
    def invoke(self, function: str, event: dict[str, Any]) -> dict[str, Any]:
        """One invocation in the function's own container: its own Services (token, JWK cache, case map)."""
        services.set_services(self.containers.get(function))
        try:
            with contextlib.redirect_stdout(h.NULL):  # metrics (EMF) go to stdout
                answer: dict[str, Any] = self.fns[function].lambda_handler(event, self.context)
        finally:
            self.containers[function] = services._services
            services.set_services(None)
        return answer

    def cold(self, function: str) -> None:
        """The function's next invocation lands in a new container."""
        self.containers[function] = None
        h.cold_container()

    def post_message(self, case_id: str, text: str = "Hi, my order has not arrived.") -> None:
        body = json.dumps({"text": text})
        event = api_gateway_event(
            "POST", "/cases/{caseId}/messages", path_parameters={"caseId": case_id}, body=body, headers=JSON
        )
        answer = self.invoke("outbound_sender", event)
        assert answer["statusCode"] == 202, answer

    def deliver_next(self) -> None:
        """The event-source mapping's part (receive, then delete on success) is done here, outside the count."""
        sqs = self.sqs
        started = time.thread_time()
        got = sqs.receive_message(
            QueueUrl=self.res.queue_url, MaxNumberOfMessages=1, AttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", [])
        assert got, "no message waiting on the outbound queue"
        self.bench_s += time.thread_time() - started
        answer = self.invoke("outbound_sender", sqs_event(got, self.res.queue_arn))
        assert answer.get("batchItemFailures") == [], answer
        started = time.thread_time()
        sqs.delete_message(QueueUrl=self.res.queue_url, ReceiptHandle=got[0]["ReceiptHandle"])
        self.bench_s += time.thread_time() - started

    def webhook(self, event_type: str, case_id: str, event_id: str | None = None) -> str:
        conversation = self.conversations.get(case_id, case_id)
        if event_id is None:
            self._event_n += 1
            event_id = f"evt-{self._event_n:06d}"
        # A redelivery is the same body again (another body under a known id is refused as a replay).
        body = self._bodies.get(event_id) or webhook_body(event_type, conversation, **EVENT_EXTRAS.get(event_type, {}))
        self._bodies[event_id] = body
        headers = h.webhook_headers(self.signer, body, event_id)
        answer = self.invoke("webhook_intake", webhook_event(headers, body))
        assert answer["statusCode"] == 200, answer
        return event_id

    def customer_leaves(self, case_id: str) -> None:
        event = api_gateway_event("DELETE", "/cases/{caseId}/conversation", path_parameters={"caseId": case_id})
        answer = self.invoke("conversation_lifecycle", event)
        assert answer["statusCode"] == 200, answer

    def open_conversation(self, case_id: str) -> None:
        event = api_gateway_event(
            "POST", "/cases/{caseId}/conversation", path_parameters={"caseId": case_id}, body="{}", headers=JSON
        )
        answer = self.invoke("conversation_lifecycle", event)
        assert answer["statusCode"] in (200, 201), answer

    def learn_conversation(self, case_id: str) -> None:
        case = self.reader.get_case(case_id)
        assert case is not None and case.conversation_id
        self.conversations[case_id] = case.conversation_id

    # -- measuring -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _window(self) -> Iterator[list[h.Call]]:
        with self.log.window() as taken:
            yield taken

    def measure(self, name: str, action: Callable[[], object], repeats: int = 1) -> Row:
        """Counts of the last run (asserted equal across runs) and the median CPU time of the invoking thread:
        what the function itself spends (our code, botocore's serialising and signing, requests), while moto's
        server and the 8x8 stand-in answer on other threads. The bench's own SQS calls are taken out."""
        per_run: list[Counter[str]] = []
        code: list[float] = []
        units: dict[str, float] = {}
        for _ in range(repeats):
            bench_before = self.bench_s
            with self._window() as taken:
                started = time.thread_time()
                action()
                cpu = time.thread_time() - started
            per_run.append(h.counts(taken))
            code.append((cpu - (self.bench_s - bench_before)) * 1000)
            units = capacity_units(taken)
        if any(c != per_run[0] for c in per_run):
            raise AssertionError(f"{name}: call counts differ between runs: {per_run}")
        return Row(name, per_run[-1], statistics.median(code), runs=repeats, units=units)

    def message_round(self, case_id: str) -> None:
        self.post_message(case_id)
        self.deliver_next()


WEBHOOK_TYPES = ("QUEUED", "AGENT_JOINED", "TEXT", "TRANSFER", "AGENT_LEFT")


def judge(row: Row) -> None:
    steady = row.name.startswith(("steady-state message", "reopen"))
    if steady:
        row.target = "8x8 = 1, tokens 0, DynamoDB <= 2"
        row.met = (
            row.cc == 1
            and row.of("8x8", "post_message") == 1
            and row.of("8x8", "token") == 0
            and row.of("dynamodb") <= 2
        )
    elif row.name.startswith("webhook ") and "cold" not in row.name:
        row.target = "8x8 = 0, AWS <= 2, JWK 0"
        row.met = row.cc == 0 and row.aws <= 2


def run(quick: bool = False) -> list[Row]:
    h.apply_environment()
    repeats = 3 if quick else 15
    log = h.CallLog()
    signer = h.new_signer()
    fake = h.Fake8x8(log, signer)
    rows: list[Row] = []
    with h.moto_server(), h.count_aws_calls(log), fake.serving():
        resources = h.create_bench_resources()
        h.cold_container()
        s = Scenarios(log, resources, signer)
        # A cold container's first message and first webhook pay for the secret, the token and the key.
        rows.append(s.measure("first message, cold container (accept + deliver)", lambda: s.message_round("case-a")))
        s.learn_conversation("case-a")
        s.cold("webhook_intake")
        rows.append(s.measure("webhook QUEUED, cold container", lambda: s.webhook("QUEUED", "case-a")))

        rows.append(s.measure("first message of a new case (accept + deliver)", lambda: s.message_round("case-b")))
        s.learn_conversation("case-b")
        rows.append(s.measure("  of which API accept", lambda: s.post_message("case-b")))
        s.deliver_next()
        rows.append(s.measure("steady-state message (accept + deliver)", lambda: s.message_round("case-b"), repeats))
        rows.append(s.measure("  of which API accept", lambda: s.post_message("case-b"), 1))
        s.deliver_next()
        rows.append(s.measure("webhook QUEUED, first event of the conversation", lambda: s.webhook("QUEUED", "case-b")))
        for kind in WEBHOOK_TYPES:
            runs = repeats if kind == "TEXT" else 1
            rows.append(s.measure(f"webhook {kind}", functools.partial(s.webhook, kind, "case-b"), runs))
        rows.append(s.measure("reopen: message after AGENT_LEFT", lambda: s.message_round("case-b")))
        duplicate = s.webhook("TEXT", "case-b")
        rows.append(s.measure("webhook redelivered (duplicate)", lambda: s.webhook("TEXT", "case-b", duplicate)))
        rows.append(s.measure("webhook, conversation no case knows (kept)", lambda: s.webhook("QUEUED", "conv-x")))
        rows.append(s.measure("open conversation (API), new case", lambda: s.open_conversation("case-c")))
        rows.append(s.measure("customer leaves", lambda: s.customer_leaves("case-b")))
        rows.append(s.measure("reopen: message after the customer left", lambda: s.message_round("case-b")))
    h.cold_container()  # nothing made for this stand-in outlives it
    for row in rows:
        judge(row)
    return rows
