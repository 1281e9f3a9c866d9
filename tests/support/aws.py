"""The AWS side of template.yaml, created in moto from the template itself (mock_aws must be active), and the
environment template.yaml gives the functions."""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import yaml

from tests.support.paths import TEMPLATE_PATH

REGION = "us-east-1"
ClientFactory = Callable[[str], Any]


# ---- template.yaml -----------------------------------------------------------------------------
class _CfnLoader(yaml.SafeLoader):
    """A YAML loader that keeps CloudFormation short-form tags (!Ref, !GetAtt, !Sub ...) as plain data."""


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_template() -> dict[str, Any]:
    template: dict[str, Any] = yaml.load(TEMPLATE_PATH.read_text(), Loader=_CfnLoader)
    return template


@functools.cache
def _template_resources() -> dict[str, Any]:
    resources: dict[str, Any] = load_template()["Resources"]
    return resources


def template_properties(logical_id: str) -> dict[str, Any]:
    props: dict[str, Any] = _template_resources()[logical_id]["Properties"]
    return props


# ---- moto's DynamoDB, atomic per request ---------------------------------------------------------
_DYNAMODB_LOCK = threading.RLock()


def _serialised(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _DYNAMODB_LOCK:
            return method(*args, **kwargs)

    return wrapper


def serialise_dynamodb(monkeypatch: Any) -> None:
    """DynamoDB applies each request (a conditional write, a transaction) atomically; moto's in-memory backend does
    not lock, and its UpdateItem reads the old image (ReturnValues) outside its backend call: whole requests are
    serialised, as the local stack does, for as long as `monkeypatch` lasts."""
    from moto.dynamodb.models import DynamoDBBackend  # noqa: PLC0415 - moto's internals, only when patched
    from moto.dynamodb.responses import DynamoHandler  # noqa: PLC0415

    for name in ("put_item", "update_item", "delete_item", "transact_write_items", "get_item", "query"):
        monkeypatch.setattr(DynamoDBBackend, name, _serialised(getattr(DynamoDBBackend, name)))
    monkeypatch.setattr(DynamoHandler, "call_action", _serialised(DynamoHandler.call_action))


def create_keyed_table(dynamodb: Any, name: str) -> None:
    """An on-demand table keyed like casebridge's (string pk and sk), for tests of the AWS stand-ins themselves."""
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


# ---- clients -----------------------------------------------------------------------------------
@functools.cache
def aws_client(service: str) -> Any:
    """A boto3 client for the tests' own calls, made once per process (moto intercepts it whenever a mock is
    active; creating clients is the slowest part of a moto test)."""
    return boto3.client(  # type: ignore[call-overload]
        service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


# ---- resources ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ResourceNames:
    table: str = "casebridge-cases"
    bus: str = "casebridge-case-events"
    queue: str = "casebridge-outbound.fifo"
    dead_letter_queue: str = "casebridge-outbound-dlq.fifo"
    secret: str = "casebridge/8x8"


@dataclass(frozen=True)
class AwsResources:
    table: str
    bus: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    secret_arn: str

    def environment(self) -> dict[str, str]:
        """The variables template.yaml points at these resources."""
        return {
            "CASES_TABLE_NAME": self.table,
            "EVENT_BUS_NAME": self.bus,
            "OUTBOUND_QUEUE_URL": self.queue_url,
            "OUTBOUND_DLQ_URL": self.dlq_url,
            "EIGHTXEIGHT_SECRET_ARN": self.secret_arn,
        }


def create_cases_table(name: str, client: ClientFactory = aws_client) -> str:
    """template.yaml's CasesTable: keys, indexes, billing and TTL."""
    props = template_properties("CasesTable")
    dynamodb = client("dynamodb")
    dynamodb.create_table(
        TableName=name,
        AttributeDefinitions=props["AttributeDefinitions"],
        KeySchema=props["KeySchema"],
        BillingMode=props["BillingMode"],
        GlobalSecondaryIndexes=props.get("GlobalSecondaryIndexes", []),
    )
    ttl = props["TimeToLiveSpecification"]
    dynamodb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": ttl["Enabled"]}
    )
    return name


def _queue_attributes(props: dict[str, Any], **overrides: str) -> dict[str, str]:
    """A queue's CloudFormation properties as SQS attributes (the ones SQS takes at creation)."""
    wanted = {"FifoQueue", "ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit"}
    wanted |= {"VisibilityTimeout", "MessageRetentionPeriod"}
    attributes = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in props.items() if k in wanted}
    return {**attributes, **overrides}


def create_outbound_queues(
    names: ResourceNames, client: ClientFactory = aws_client, visibility_timeout: int | None = None
) -> tuple[str, str, str]:
    """template.yaml's OutboundQueue and its dead-letter queue: (queue url, queue arn, dead-letter queue url).
    `visibility_timeout` replaces the template's, for tests that wait for a crashed batch to come back."""
    sqs = client("sqs")
    dlq_url = sqs.create_queue(
        QueueName=names.dead_letter_queue, Attributes=_queue_attributes(template_properties("OutboundDeadLetterQueue"))
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    props = template_properties("OutboundQueue")
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": props["RedrivePolicy"]["maxReceiveCount"]}
    overrides = {"RedrivePolicy": json.dumps(redrive)}
    if visibility_timeout is not None:
        overrides["VisibilityTimeout"] = str(visibility_timeout)
    queue_url = sqs.create_queue(QueueName=names.queue, Attributes=_queue_attributes(props, **overrides))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return queue_url, queue_arn, dlq_url


def create_resources(
    names: ResourceNames | None = None,
    *,
    client: ClientFactory = aws_client,
    credentials: tuple[str, str] = ("key-1", "secret-1"),
    visibility_timeout: int | None = None,
) -> AwsResources:
    """Everything template.yaml creates that the functions call: the table, the bus, the outbound queues, and the
    8x8 credentials secret (which the template takes as a parameter)."""
    names = names or ResourceNames()
    create_cases_table(names.table, client)
    client("events").create_event_bus(Name=names.bus)
    queue_url, queue_arn, dlq_url = create_outbound_queues(names, client, visibility_timeout)
    api_key, api_secret = credentials
    secret_arn = client("secretsmanager").create_secret(
        Name=names.secret, SecretString=json.dumps({"apiKey": api_key, "apiSecret": api_secret})
    )["ARN"]
    return AwsResources(names.table, names.bus, queue_url, queue_arn, dlq_url, secret_arn)
