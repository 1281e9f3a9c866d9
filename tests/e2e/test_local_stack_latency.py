"""The local stack waits only where AWS would: the SQS mapping runs batches of different FIFO
groups at once and never two of one group, a function scales out to more containers, a transaction that fails
changes nothing (moto's table copy replaced by an item undo), and moto's long poll looks again when its queue
changes. Behaviour only: no timing thresholds."""

from __future__ import annotations

import threading
import types
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from scripts.local_stack import moto_process
from scripts.local_stack.aws_standin import AwsStandIn
from scripts.local_stack.functions import MAX_CONTAINERS, LocalFunction
from scripts.local_stack.sqs_poller import SqsPoller
from scripts.local_stack.template import SqsSource
from tests.e2e.e2e_support import wait_until
from tests.support.aws import create_keyed_table

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef
    from mypy_boto3_sqs import SQSClient

Handler = Callable[[dict[str, Any], Any], Any]
WAIT_S = 10.0  # how long a step may take before the test fails (a bound for a hang, not a measurement)


@pytest.fixture(scope="module")
def aws() -> Iterator[AwsStandIn]:
    stand_in = AwsStandIn()
    stand_in.start()
    yield stand_in
    stand_in.stop()


def fifo_queue(aws: AwsStandIn, name: str) -> tuple[str, str]:
    sqs = aws.sqs
    url = sqs.create_queue(QueueName=f"{name}.fifo", Attributes={"FifoQueue": "true", "VisibilityTimeout": "60"})[
        "QueueUrl"
    ]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def send(sqs: SQSClient, url: str, group: str, body: str) -> None:
    sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=body)


def local_function(handler: Handler, scales: bool = True) -> LocalFunction:
    """A function whose every container runs `handler` (a new container only when `scales`)."""
    return LocalFunction(
        logical_id="TestFunction",
        name="test-function",
        module=types.ModuleType("test_function"),
        handler=handler,
        memory_mb=128,
        timeout_s=30,
        region="us-east-1",
        account_id="123456789012",
        environment={},
        new_container=(lambda: handler) if scales else None,
    )


def poller(aws: AwsStandIn, url: str, arn: str, function: LocalFunction) -> SqsPoller:
    source = SqsSource("TestFunction", "Queue", arn, batch_size=1, report_batch_item_failures=True, enabled=True)
    return SqsPoller(source=source, function=function, sqs=aws.sqs, queue_url=url, queue_arn=arn, region=aws.region)


def group_of(event: dict[str, Any]) -> str:
    return str(event["Records"][0]["attributes"]["MessageGroupId"])


def test_batches_of_two_groups_run_at_once(aws: AwsStandIn) -> None:
    url, arn = fifo_queue(aws, "two-groups")
    both_in = threading.Barrier(2, timeout=WAIT_S)  # passes only when the two batches overlap
    met: list[str] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        both_in.wait()
        met.append(group_of(event))
        return {"batchItemFailures": []}

    running = poller(aws, url, arn, local_function(handler))
    running.start()
    try:
        send(aws.sqs, url, "case-a", "a-1")
        send(aws.sqs, url, "case-b", "b-1")
        wait_until(f"both batches done (done: {met}; poller errors: {running.errors})", lambda: len(met) == 2)
    finally:
        running.stop()
    assert sorted(met) == ["case-a", "case-b"]
    assert not running.errors


def test_one_group_is_never_in_two_batches_and_keeps_its_order(aws: AwsStandIn) -> None:
    url, arn = fifo_queue(aws, "one-group")
    lock = threading.Lock()
    active: dict[str, int] = defaultdict(int)
    overlaps: list[str] = []
    seen: dict[str, list[str]] = defaultdict(list)
    gate = threading.Event()  # holds the first batches so the later messages wait on the queue meanwhile

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        group = group_of(event)
        with lock:
            active[group] += 1
            if active[group] > 1:
                overlaps.append(group)
        gate.wait(WAIT_S)
        with lock:
            seen[group].append(event["Records"][0]["body"])
            active[group] -= 1
        return {"batchItemFailures": []}

    running = poller(aws, url, arn, local_function(handler))
    sent = {group: [f"{group}-{n}" for n in range(5)] for group in ("case-a", "case-b")}
    for n in range(5):
        for group, bodies in sent.items():
            send(aws.sqs, url, group, bodies[n])
    running.start()
    try:
        wait_until("a batch of each group in flight", lambda: sum(active.values()) == 2)
        gate.set()
        wait_until("the ten messages handled", lambda: sum(len(v) for v in seen.values()) == 10)
    finally:
        gate.set()
        running.stop()
    assert not overlaps, f"a group was in two batches at once: {overlaps}"
    assert dict(seen) == sent
    assert not running.errors


def test_a_busy_function_starts_another_container_and_each_runs_one_event() -> None:
    inside = threading.Barrier(2, timeout=WAIT_S)
    function = local_function(lambda event, context: inside.wait())
    threads = [threading.Thread(target=function.invoke, args=({},)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    assert not inside.broken, "the two invocations did not run at once"
    assert function.containers == 2 <= MAX_CONTAINERS
    assert function.invocations == 2


def test_a_function_that_does_not_scale_runs_one_event_at_a_time() -> None:
    lock = threading.Lock()
    overlaps: list[int] = []
    active = [0]

    def handler(event: dict[str, Any], context: Any) -> None:
        with lock:
            active[0] += 1
            if active[0] > 1:
                overlaps.append(active[0])
        threading.Event().wait(0.01)  # widen the window an overlap would need; not a synchronisation
        with lock:
            active[0] -= 1

    function = local_function(handler, scales=False)
    threads = [threading.Thread(target=function.invoke, args=({},)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    assert function.containers == 1 and function.invocations == 4
    assert not overlaps


@dataclass
class FakeQueue:
    """What the long poll reads of a moto queue: its condition and its messages (none invisible here)."""

    _messages_lock: threading.Condition = field(default_factory=threading.Condition)
    _messages: list[Any] = field(default_factory=list)


def test_a_long_poll_looks_again_when_its_queue_changes() -> None:
    queue = FakeQueue()
    backend = types.SimpleNamespace(get_queue=lambda name: queue)
    looked, freed = threading.Event(), threading.Event()

    def look(backend: Any, name: str, count: int, wait: int, visibility: int, attributes: Any) -> list[str]:
        assert wait == 0, "each look is immediate; the waiting is the long poll's"
        looked.set()
        return ["second"] if freed.is_set() else []

    answer: list[list[str]] = []
    receive = moto_process.long_poll(look)
    # WaitTimeSeconds 20 outlasts the join below: only a poll woken by the change answers in time.
    polling = threading.Thread(target=lambda: answer.append(receive(backend, "q.fifo", 1, 20, 30, None)), daemon=True)
    polling.start()
    assert looked.wait(WAIT_S)
    # A delete frees the group (moto as shipped keeps the groups it saw when the poll began, and spins).
    freed.set()
    moto_process.queue_changed(queue)  # type: ignore[arg-type]
    polling.join(WAIT_S)
    assert answer == [["second"]]


def test_a_transaction_with_a_failed_condition_changes_nothing(aws: AwsStandIn) -> None:
    ddb = aws.dynamodb
    create_keyed_table(ddb, "transactions")
    case = {"pk": {"S": "case#1"}, "sk": {"S": "case"}}
    ddb.put_item(TableName="transactions", Item={**case, "version": {"N": "1"}})

    def bump_and_add(expected_version: str, entry: str) -> list[TransactWriteItemTypeDef]:
        return [
            {
                "Update": {
                    "TableName": "transactions",
                    "Key": case,
                    "UpdateExpression": "SET version = version + :one",
                    "ConditionExpression": "version = :v",
                    "ExpressionAttributeValues": {":one": {"N": "1"}, ":v": {"N": expected_version}},
                }
            },
            {"Put": {"TableName": "transactions", "Item": {"pk": {"S": "case#1"}, "sk": {"S": entry}}}},
        ]

    ddb.transact_write_items(TransactItems=bump_and_add("1", "event#1"))
    with pytest.raises(ddb.exceptions.TransactionCanceledException) as cancelled:
        # The put comes first this time, and is undone when the stale version check fails.
        ddb.transact_write_items(TransactItems=list(reversed(bump_and_add("1", "event#2"))))
    reasons = [r.get("Code") for r in cancelled.value.response.get("CancellationReasons", [])]
    assert reasons == ["None", "ConditionalCheckFailed"]
    items = ddb.query(
        TableName="transactions",
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "case#1"}},
    )["Items"]
    assert sorted(i["sk"]["S"] for i in items) == ["case", "event#1"]
    assert next(i for i in items if i["sk"]["S"] == "case")["version"] == {"N": "2"}
