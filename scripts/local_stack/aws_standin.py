"""The AWS stand-in: moto's server in a process of its own (scripts/local_stack/moto_process.py says how it
differs from moto as shipped), with the template's table, queues, bucket and event bus created in it.

A process of its own, as AWS is another machine: moto's work (parsing, serialising, scanning queues) runs on
another core than the functions' and the local API's instead of taking turns with them for this process's GIL.
"""

from __future__ import annotations

import json
import secrets
import string
import subprocess
import sys
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import boto3
import requests

from scripts.local_stack import REPO_ROOT
from scripts.local_stack.template import Template, TemplateError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

# Credentials moto accepts; nothing here ever reaches AWS.
LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
CREATED_TYPES = (
    "AWS::DynamoDB::Table",
    "AWS::SQS::Queue",
    "AWS::Events::EventBus",
    "AWS::S3::Bucket",
    "AWS::SecretsManager::Secret",
)
EXIT_WAIT_S = 10.0  # how long moto's process may take to exit once told to


@dataclass
class CreatedResource:
    logical_id: str
    type: str
    name: str
    attributes: dict[str, str]  # "Ref" plus the GetAtt attributes


class AwsStandIn:
    def __init__(self, region: str = "us-east-1", host: str = "127.0.0.1", port: int = 0) -> None:
        self.region, self.host, self.port = region, host, port
        self.endpoint_url = ""
        self.listen_backlog = 0  # the moto server's, as it reports it
        self.created: list[CreatedResource] = []
        self.skipped: list[tuple[str, str]] = []  # (logical id, type) not emulated
        self.process: subprocess.Popen[str] | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> str:
        command = [
            sys.executable,
            "-m",
            "scripts.local_stack.moto_process",
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]
        # stderr stays this process's: a moto traceback shows where the stack's own output goes.
        self.process = subprocess.Popen(
            command, cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        ready = self._ready_line(self.process.stdout)
        self.listen_backlog = int(ready["backlog"])
        self.endpoint_url = f"http://{self.host}:{int(ready['port'])}"
        return self.endpoint_url

    def _ready_line(self, stdout: IO[str] | None) -> dict[str, Any]:
        line = stdout.readline() if stdout is not None else ""
        if not line:
            code = self.process.wait(timeout=EXIT_WAIT_S) if self.process is not None else None
            raise RuntimeError(f"moto's process exited before it listened (exit code {code}); see its stderr above")
        answer: dict[str, Any] = json.loads(line)
        if "errno" in answer:
            raise OSError(answer["errno"], f"moto could not listen on {self.host}:{self.port}: {answer['error']}")
        return answer

    def reset(self) -> None:
        requests.post(f"{self.endpoint_url}/moto-api/reset", timeout=10).raise_for_status()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()  # moto's process serves until its standard input closes
        try:
            process.wait(timeout=EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def client(self, service: str) -> Any:
        session = boto3.session.Session(
            aws_access_key_id=LOCAL_CREDENTIALS["aws_access_key_id"],
            aws_secret_access_key=LOCAL_CREDENTIALS["aws_secret_access_key"],
            region_name=self.region,
        )
        return session.client(service, endpoint_url=self.endpoint_url)  # type: ignore[call-overload]

    # A new client each time: every poller and the channel get their own connection pool.
    @property
    def dynamodb(self) -> DynamoDBClient:
        client: DynamoDBClient = self.client("dynamodb")
        return client

    @property
    def sqs(self) -> SQSClient:
        client: SQSClient = self.client("sqs")
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
        if type_ == "AWS::SecretsManager::Secret":
            return self._secret(template, logical_id, props)
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
        events: EventBridgeClient = self.client("events")
        arn = events.create_event_bus(Name=name)["EventBusArn"]
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

    def _secret(self, template: Template, logical_id: str, props: dict[str, Any]) -> CreatedResource:
        """SecretString as given, or GenerateSecretString's random value (length and punctuation honoured)."""
        name = str(props.get("Name") or self.default_name(template, logical_id))
        value = props.get("SecretString")
        if value is None:
            spec = props.get("GenerateSecretString") or {}
            alphabet = string.ascii_letters + string.digits
            if Template.as_string(spec.get("ExcludePunctuation", False)) != "true":
                alphabet += "!#$%&()*+,-.:;<=>?@[]^_{|}~"
            length = int(spec.get("PasswordLength", 32))
            value = "".join(secrets.choice(alphabet) for _ in range(length))
        client: SecretsManagerClient = self.client("secretsmanager")
        arn = client.create_secret(Name=name, SecretString=str(value))["ARN"]
        return CreatedResource(logical_id, "AWS::SecretsManager::Secret", name, {"Ref": arn, "Id": arn})

    def secret_value(self, arn: str) -> str:
        client: SecretsManagerClient = self.client("secretsmanager")
        return client.get_secret_value(SecretId=arn)["SecretString"]

    def queue_url_for_arn(self, arn: str) -> str:
        for resource in self.created:
            if resource.attributes.get("Arn") == arn:
                return resource.attributes["QueueUrl"]
        return self.sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[-1])["QueueUrl"]

    # -- things the template takes as parameters ---------------------------------------------

    def put_secret(self, name: str, value: dict[str, str]) -> str:
        """A Secrets Manager secret (e.g. the 8x8 credentials the template takes as an ARN); returns its ARN."""
        secrets: SecretsManagerClient = self.client("secretsmanager")
        return secrets.create_secret(Name=name, SecretString=json.dumps(value))["ARN"]
