"""moto's server in the local stack spends only what AWS would: it keeps a client's connection open between
requests (werkzeug's development server closed each one), and writes DynamoDB's data answers with json.dumps
instead of walking the botocore model; what a client reads is exactly what moto itself answers."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from moto import mock_aws

from scripts.local_stack import moto_process
from scripts.local_stack.aws_standin import AwsStandIn
from tests.support.aws import create_keyed_table


@pytest.fixture(scope="module")
def stand_in() -> Iterator[AwsStandIn]:
    running = AwsStandIn()
    running.start()
    yield running
    running.stop()


def dynamodb_request(target: str, body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": f"DynamoDB_20120810.{target}",
        "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=host, Signature=0",
    }
    return json.dumps(body).encode(), headers


def test_a_connection_stays_open_between_requests(stand_in: AwsStandIn) -> None:
    endpoint = urlsplit(stand_in.endpoint_url)
    connection = http.client.HTTPConnection(endpoint.hostname or "127.0.0.1", endpoint.port, timeout=10)
    body, headers = dynamodb_request("ListTables", {})
    connection.request("POST", "/", body, headers)
    first = connection.getresponse()
    assert first.status == 200 and "TableNames" in json.loads(first.read())
    assert (first.getheader("Connection") or "").lower() != "close"
    socket = connection.sock
    assert socket is not None  # http.client keeps it: the server did not ask to close
    connection.request("POST", "/", body, headers)
    second = connection.getresponse()
    assert second.status == 200 and "TableNames" in json.loads(second.read())
    assert connection.sock is socket  # the same connection answered twice
    # A chunked body goes werkzeug's way (and closes): still answered.
    connection.request("POST", "/", iter([body]), headers, encode_chunked=True)
    chunked = connection.getresponse()
    assert chunked.status == 200 and "TableNames" in json.loads(chunked.read())
    connection.close()


def exercise(dynamodb: Any) -> list[Any]:
    """Data-plane calls over every attribute type; the answers as a client reads them."""
    create_keyed_table(dynamodb, "answers")
    every_type = {
        "s": {"S": "text é ✓"},
        "n": {"N": "12.50"},
        "b": {"B": b"\x00\x01binary"},
        "ss": {"SS": ["a", "b"]},
        "ns": {"NS": ["1", "2.5"]},
        "bs": {"BS": [b"\x02", b"\x03"]},
        "m": {"M": {"inner": {"L": [{"S": "x"}, {"N": "3"}, {"NULL": True}, {"BOOL": False}]}}},
        "flag": {"BOOL": True},
        "nothing": {"NULL": True},
    }
    plain = {"text": {"S": "plain"}, "count": {"N": "7"}, "m": {"M": {"l": {"L": [{"S": "y"}]}}}}
    answers: list[Any] = []
    key = {"pk": {"S": "case#1"}, "sk": {"S": "a"}}
    calls: list[Callable[[], Any]] = [
        lambda: dynamodb.put_item(TableName="answers", Item={**key, **every_type}),
        lambda: dynamodb.put_item(TableName="answers", Item={"pk": {"S": "case#1"}, "sk": {"S": "b"}, **plain}),
        lambda: dynamodb.put_item(
            TableName="answers", Item={"pk": {"S": "case#1"}, "sk": {"S": "c"}, **plain}, ReturnValues="ALL_OLD"
        ),
        lambda: dynamodb.get_item(TableName="answers", Key=key, ConsistentRead=True),
        lambda: dynamodb.get_item(TableName="answers", Key={"pk": {"S": "case#1"}, "sk": {"S": "b"}}),
        lambda: dynamodb.get_item(TableName="answers", Key={"pk": {"S": "none"}, "sk": {"S": "none"}}),
        lambda: dynamodb.query(
            TableName="answers",
            KeyConditionExpression="pk = :p AND sk > :s",
            ExpressionAttributeValues={":p": {"S": "case#1"}, ":s": {"S": "a"}},
        ),
        lambda: dynamodb.query(
            TableName="answers",
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "case#1"}},
            Limit=2,
        ),
        lambda: dynamodb.query(
            TableName="answers",
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "case#1"}},
            Select="COUNT",
        ),
        lambda: dynamodb.batch_get_item(
            RequestItems={"answers": {"Keys": [{"pk": {"S": "case#1"}, "sk": {"S": s}} for s in ("b", "c", "z")]}}
        ),
        lambda: dynamodb.update_item(
            TableName="answers",
            Key={"pk": {"S": "case#1"}, "sk": {"S": "b"}},
            UpdateExpression="SET #c = #c + :one, tags = :tags",
            ExpressionAttributeNames={"#c": "count"},
            ExpressionAttributeValues={":one": {"N": "1"}, ":tags": {"SS": ["t"]}},
            ReturnValues="ALL_NEW",
        ),
        lambda: dynamodb.update_item(
            TableName="answers",
            Key={"pk": {"S": "case#1"}, "sk": {"S": "c"}},
            UpdateExpression="REMOVE m",
            ReturnValues="UPDATED_OLD",
        ),
        lambda: dynamodb.scan(TableName="answers"),
        lambda: dynamodb.transact_get_items(
            TransactItems=[{"Get": {"TableName": "answers", "Key": {"pk": {"S": "case#1"}, "sk": {"S": "b"}}}}]
        ),
        lambda: dynamodb.delete_item(TableName="answers", Key=key, ReturnValues="ALL_OLD"),
    ]
    for call in calls:
        answer = call()
        answer.pop("ResponseMetadata", None)
        answers.append(answer)
    return answers


def test_dynamodb_answers_are_what_moto_itself_answers(aws_env: None, stand_in: AwsStandIn) -> None:
    through_stand_in = exercise(stand_in.dynamodb)
    with mock_aws():  # moto in this process, answering with its own serializer
        by_moto = exercise(boto3.client("dynamodb", region_name="us-east-1"))
    assert through_stand_in == by_moto


def test_only_plain_answers_take_the_short_way() -> None:
    assert moto_process.plain_json({"Items": [{"s": {"S": "x"}, "m": {"M": {"l": {"L": [{"BOOL": True}]}}}}]})
    assert not moto_process.plain_json({"Items": [{"b": {"B": "AAE="}}]})  # binary: moto's serializer encodes it
    assert not moto_process.plain_json({"Item": {"bs": {"BS": ["AAE="]}}})
    assert not moto_process.plain_json({"LastEvaluatedKey": None})  # moto's serializer leaves None out
    assert not moto_process.plain_json({"Item": {"s": {"S": b"raw"}}})
