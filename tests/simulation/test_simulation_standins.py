"""The simulation's stand-ins behave as the AWS services they replace where the connector depends on it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.simulation.dynamodb import InMemoryDynamoDB
from tests.simulation.queues import DEDUPLICATION_WINDOW_S, FifoQueue
from tests.simulation.world import World


def _in_world(world: World, run: Callable[[], Any]) -> Any:
    """Run `run` as one fault-free process of the world and return what it returned."""
    proc = world.spawn("test", run, faultless=True)
    world.run()
    if proc.error is not None:
        raise proc.error
    return proc.result


def _key(sk: str) -> dict[str, Any]:
    return {"pk": {"S": "CASE#1"}, "sk": {"S": sk}}


def test_a_failed_condition_changes_nothing_and_can_return_the_item() -> None:
    world = World(0)
    table = InMemoryDynamoDB(world)

    def run() -> dict[str, Any]:
        table.put_item(TableName="t", Item={**_key("CASE"), "version": {"N": "1"}})
        with pytest.raises(ClientError) as refused:
            table.update_item(
                TableName="t",
                Key=_key("CASE"),
                UpdateExpression="SET version = :next",
                ConditionExpression="version = :v",
                ExpressionAttributeValues={":next": {"N": "3"}, ":v": {"N": "2"}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        answer: dict[str, Any] = refused.value.response  # type: ignore[assignment]
        return answer

    answer = _in_world(world, run)
    assert answer["Error"]["Code"] == "ConditionalCheckFailedException"
    assert answer["Item"]["version"] == {"N": "1"}
    assert table.items[("CASE#1", "CASE")]["version"] == {"N": "1"}


def test_a_transaction_is_all_or_nothing_with_a_reason_per_item() -> None:
    world = World(0)
    table = InMemoryDynamoDB(world)

    def run() -> list[str]:
        table.put_item(TableName="t", Item={**_key("RECEIPT")})
        with pytest.raises(ClientError) as cancelled:
            table.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": "t", "Item": {**_key("EVENT#1")}}},
                    {
                        "Put": {
                            "TableName": "t",
                            "Item": {**_key("RECEIPT")},
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            )
        return [r["Code"] for r in cancelled.value.response["CancellationReasons"]]

    assert _in_world(world, run) == ["None", "ConditionalCheckFailed"]
    assert ("CASE#1", "EVENT#1") not in table.items


def test_update_expressions_add_and_delete_set_members_and_drop_an_empty_set() -> None:
    world = World(0)
    table = InMemoryDynamoDB(world)

    def update(expression: str, members: list[str]) -> None:
        table.update_item(
            TableName="t",
            Key=_key("CASE"),
            UpdateExpression=expression,
            ExpressionAttributeValues={":s": {"SS": members}},
        )

    def run() -> None:
        update("ADD pendingPublish :s", ["a", "b"])
        update("DELETE pendingPublish :s", ["a"])
        assert table.items[("CASE#1", "CASE")]["pendingPublish"] == {"SS": ["b"]}
        update("DELETE pendingPublish :s", ["b"])

    _in_world(world, run)
    assert "pendingPublish" not in table.items[("CASE#1", "CASE")]


def test_a_fifo_group_is_locked_while_a_message_is_in_flight_and_keeps_its_order() -> None:
    world = World(0)
    queue = FifoQueue(world, "q.fifo", visibility_timeout=30)
    for text in ("a1", "a2", "b1"):
        queue.send(text, text[0], text)
    first = queue.receive(1)
    assert [m.body for m in first] == ["a1"]
    assert [m.body for m in queue.receive(10)] == ["b1"]  # group a is locked behind a1
    world.now += 31  # the visibility ends: a1 comes back before a2, which was never handed out
    assert [m.body for m in queue.receive(10)] == ["a1", "a2", "b1"]


def test_a_deduplication_id_is_dropped_for_five_minutes_per_group_when_the_queue_says_so() -> None:
    world = World(0)
    per_queue = FifoQueue(world, "dlq.fifo", visibility_timeout=30)
    per_group = FifoQueue(world, "q.fifo", visibility_timeout=30, per_group_deduplication=True)
    for queue in (per_queue, per_group):
        queue.send("x", "g1", "same")
        queue.send("x", "g2", "same")
    assert [m.group for m in per_queue.messages] == ["g1"]
    assert [m.group for m in per_group.messages] == ["g1", "g2"]
    world.now += DEDUPLICATION_WINDOW_S + 1
    per_queue.send("x", "g1", "same")
    assert len(per_queue.messages) == 2
