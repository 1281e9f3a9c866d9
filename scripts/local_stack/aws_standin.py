"""The AWS stand-in: moto in server mode, with the template's table, queues and event bus created in it.

moto's DynamoDB is not safe under concurrent requests: a TransactWriteItems deep-copies the tables it touches
(to roll back) while another thread writes to them, which fails with "RuntimeError: dictionary changed size
during iteration" (a traceback on the console, a 500 that botocore retries) and could roll back another
request's write. The stand-in runs moto's WSGI app behind a middleware that serialises every DynamoDB request;
the other services (SQS long polls, EventBridge) stay concurrent.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
import requests
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from scripts.local_stack.template import Template, TemplateError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

# Credentials moto accepts; nothing here ever reaches AWS.
LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
CREATED_TYPES = ("AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::Events::EventBus", "AWS::S3::Bucket")


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_DYNAMODB_TARGET = "DynamoDB_"  # X-Amz-Target of every DynamoDB JSON API call (DynamoDB_20120810.PutItem...)


class SerialisedDynamoDB:
    """WSGI middleware: one DynamoDB request at a time (module docstring), the response read under the lock."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith(_DYNAMODB_TARGET):
            return self.app(environ, start_response)
        with self.lock:
            result = self.app(environ, start_response)
            try:
                return [b"".join(result)]
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()


class MotoServer:
    """moto's server (as moto.server.ThreadedMotoServer runs it: threaded werkzeug, moto's request handler),
    with DynamoDB serialised. werkzeug's listen backlog is already 128."""

    def __init__(self, host: str, port: int) -> None:
        self.app = SerialisedDynamoDB(DomainDispatcherApplication(create_backend_app))
        self.httpd: BaseWSGIServer = make_server(
            host, port, self.app, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="moto", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def get_host_and_port(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join()


@dataclass
class CreatedResource:
    logical_id: str
    type: str
    name: str
    attributes: dict[str, str]  # "Ref" plus the GetAtt attributes


@dataclass
class AwsStandIn:
    region: str = "us-east-1"
    host: str = "127.0.0.1"
    port: int = 0
    endpoint_url: str = ""
    created: list[CreatedResource] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (logical id, type) not emulated
    server: MotoServer | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> str:
        # moto's werkzeug logs every request on stderr; the stack reports what matters itself.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.server = MotoServer(self.host, self.port)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        # moto keeps its state per process, not per server: start from nothing, whatever ran before.
        self.reset()
        return self.endpoint_url

    def reset(self) -> None:
        requests.post(f"{self.endpoint_url}/moto-api/reset", timeout=10).raise_for_status()

    def stop(self) -> None:
        if self.server is not None:
            self.reset()
            self.server.stop()
            self.server = None

    def client(self, service: str) -> Any:
        session = boto3.session.Session(
            aws_access_key_id=LOCAL_CREDENTIALS["aws_access_key_id"],
            aws_secret_access_key=LOCAL_CREDENTIALS["aws_secret_access_key"],
            region_name=self.region,
        )
        return session.client(service, endpoint_url=self.endpoint_url)  # type: ignore[call-overload]

    @property
    def dynamodb(self) -> DynamoDBClient:
        client: DynamoDBClient = self.client("dynamodb")
        return client

    @property
    def sqs(self) -> SQSClient:
        client: SQSClient = self.client("sqs")
        return client

    @property
    def events(self) -> EventBridgeClient:
        client: EventBridgeClient = self.client("events")
        return client

    @property
    def secretsmanager(self) -> SecretsManagerClient:
        client: SecretsManagerClient = self.client("secretsmanager")
        return client

    # -- resources from the template -----------------------------------------------------------

    def create_from_template(self, template: Template) -> list[CreatedResource]:
        """Create every supported resource; a resource whose properties reference one not created yet waits."""
        pending = [(lid, r["Type"]) for lid, r in template.resources.items() if r.get("Type") in CREATED_TYPES]
        self.skipped = [
            (lid, r.get("Type", "")) for lid, r in template.resources.items() if r["Type"] not in CREATED_TYPES
        ]
        while pending:
            progress = False
            for logical_id, type_ in list(pending):
                try:
                    props = template.resolve(template.properties(logical_id))
                except TemplateError:
                    continue  # depends on a resource created later in this loop
                resource = self._create(template, logical_id, type_, props)
                template.physical[logical_id] = resource.attributes
                self.created.append(resource)
                pending.remove((logical_id, type_))
                progress = True
            if not progress:
                names = ", ".join(lid for lid, _ in pending)
                raise TemplateError(f"cannot resolve the properties of {names} (cycle or unsupported reference)")
        return self.created

    def _create(self, template: Template, logical_id: str, type_: str, props: dict[str, Any]) -> CreatedResource:
        if type_ == "AWS::DynamoDB::Table":
            return self._table(template, logical_id, props)
        if type_ == "AWS::SQS::Queue":
            return self._queue(template, logical_id, props)
        if type_ == "AWS::S3::Bucket":
            return self._bucket(template, logical_id, props)
        return self._event_bus(template, logical_id, props)

    @staticmethod
    def default_name(template: Template, logical_id: str) -> str:
        # CloudFormation adds a random suffix; locally the logical id is enough to be unique and readable.
        return f"{template.stack_name}-{logical_id}"

    def _table(self, template: Template, logical_id: str, props: dict[str, Any]) -> CreatedResource:
        name = str(props.get("TableName") or self.default_name(template, logical_id))
        request: dict[str, Any] = {
            "TableName": name,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        for key in ("ProvisionedThroughput", "GlobalSecondaryIndexes", "LocalSecondaryIndexes", "TableClass"):
            if key in props:
                request[key] = props[key]
        if "StreamSpecification" in props:
            request["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
        if "SSESpecification" in props:
            sse = props["SSESpecification"]
            request["SSESpecification"] = {"Enabled": bool(sse.get("SSEEnabled", False))}
        dynamodb = self.dynamodb
        table = dynamodb.create_table(**request)["TableDescription"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            dynamodb.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True}
            )
        pitr = props.get("PointInTimeRecoverySpecification")
        if pitr and pitr.get("PointInTimeRecoveryEnabled"):
            dynamodb.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
            )
        attributes = {"Ref": name, "Arn": table["TableArn"]}
        if table.get("LatestStreamArn"):
            attributes["StreamArn"] = table["LatestStreamArn"]
        return CreatedResource(logical_id, "AWS::DynamoDB::Table", name, attributes)

    def _queue(self, template: Template, logical_id: str, props: dict[str, Any]) -> CreatedResource:
        fifo = Template.as_string(props.get("FifoQueue", False)) == "true"
        name = str(props.get("QueueName") or self.default_name(template, logical_id) + (".fifo" if fifo else ""))
        # CloudFormation's queue properties are SQS's queue attributes under the same names.
        attributes = {
            key: json.dumps(value) if isinstance(value, dict | list) else Template.as_string(value)
            for key, value in props.items()
            if key not in ("QueueName", "Tags")
        }
        sqs = self.sqs
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]  # type: ignore[arg-type]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return CreatedResource(
            logical_id, "AWS::SQS::Queue", name, {"Ref": url, "Arn": arn, "QueueName": name, "QueueUrl": url}
        )

    def _event_bus(self, template: Template, logical_id: str, props: dict[str, Any]) -> CreatedResource:
        name = str(props.get("Name") or self.default_name(template, logical_id))
        arn = self.events.create_event_bus(Name=name)["EventBusArn"]
        return CreatedResource(logical_id, "AWS::Events::EventBus", name, {"Ref": name, "Arn": arn, "Name": name})

    def _bucket(self, template: Template, logical_id: str, props: dict[str, Any]) -> CreatedResource:
        # Bucket names are lowercase; the policy, encryption and lifecycle properties are not emulated.
        name = str(props.get("BucketName") or self.default_name(template, logical_id).lower())
        s3 = self.client("s3")
        if self.region == "us-east-1":
            s3.create_bucket(Bucket=name)
        else:
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": self.region})
        arn = f"arn:aws:s3:::{name}"
        domain = f"{name}.s3.amazonaws.com"
        attributes = {"Ref": name, "Arn": arn, "DomainName": domain, "RegionalDomainName": domain}
        return CreatedResource(logical_id, "AWS::S3::Bucket", name, attributes)

    def queue_url_for_arn(self, arn: str) -> str:
        for resource in self.created:
            if resource.attributes.get("Arn") == arn:
                return resource.attributes["QueueUrl"]
        return self.sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[-1])["QueueUrl"]

    # -- things the template takes as parameters ---------------------------------------------

    def put_secret(self, name: str, value: dict[str, str]) -> str:
        """A Secrets Manager secret (e.g. the 8x8 credentials the template takes as an ARN); returns its ARN."""
        return self.secretsmanager.create_secret(Name=name, SecretString=json.dumps(value))["ARN"]
