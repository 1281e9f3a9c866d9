"""What a user would get from the obvious alternative, measured in the same run on the same stand-ins (moto as a
server, the counting 8x8 fake): a straightforward connector that reads the secret and fetches a token on every
call to 8x8, reads before it writes, and caches nothing (no conversation map, no key cache). Its clients are made
once per container, as any Lambda code does. Also here: the publisher's cost per event when batched.

The straightforward connector is written out below, call by call; it shares no code with casebridge except the
signature check (the same joserfc verification a connector must do)."""

from __future__ import annotations

import json
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any

import boto3
import requests

from casebridge.contact_center.webhook_signature import JwkCache, WebhookVerifier
from scripts.bench import harness as h
from scripts.bench.counts import Row, capacity_units
from tests.support.events import EVENT_EXTRAS, webhook_body


class StraightforwardConnector:
    def __init__(self) -> None:
        self.ddb = boto3.client("dynamodb", region_name=h.REGION)
        self.secrets = boto3.client("secretsmanager", region_name=h.REGION)
        self.events = boto3.client("events", region_name=h.REGION)
        self.http = requests.Session()
        self.tenant_url = f"{h.BASE_URL}/vcc/{h.CC_REGION}/chat/v2/tenant/{h.TENANT}"

    def _token(self) -> str:
        secret = json.loads(self.secrets.get_secret_value(SecretId=h.NAMES.secret)["SecretString"])
        answer = self.http.post(
            f"{h.BASE_URL}/oauth/v2/token",
            auth=(secret["apiKey"], secret["apiSecret"]),
            data={"grant_type": "client_credentials"},
            timeout=5,
        )
        return str(answer.json()["access_token"])

    def deliver(self, case_id: str, message_id: str, text: str) -> None:
        case = self.ddb.get_item(
            TableName=h.TABLE, Key={"pk": {"S": f"CASE#{case_id}"}, "sk": {"S": "CASE"}}, ConsistentRead=True
        )["Item"]
        key = {"pk": {"S": f"CASE#{case_id}"}, "sk": {"S": f"MESSAGE#{message_id}"}}
        self.ddb.get_item(TableName=h.TABLE, Key=key, ConsistentRead=True)
        self.ddb.put_item(TableName=h.TABLE, Item={**key, "status": {"S": "sending"}})
        conversation = case["conversationId"]["S"]
        self.http.post(
            f"{self.tenant_url}/conversations/{conversation}/messages",
            json={"authorType": "user", "text": text},
            headers={"Authorization": f"Bearer {self._token()}"},
            timeout=5,
        )
        self.ddb.put_item(TableName=h.TABLE, Item={**key, "status": {"S": "sent"}})

    def webhook(self, headers: dict[str, str], body: bytes) -> None:
        def fetch(kid: str) -> Any:
            return self.http.get(f"{h.BASE_URL}/vcc/{h.CC_REGION}/chat/v2/jwk/{kid}/public", timeout=5).json()

        WebhookVerifier(h.TENANT, JwkCache(fetch)).verify({k.lower(): v for k, v in headers.items()}, body)
        event = json.loads(body)
        event_id = headers["X-Event-Id"] if "X-Event-Id" in headers else str(uuid.uuid4())
        conversation = event["conversationId"]
        mapping = self.ddb.get_item(
            TableName=h.TABLE,
            Key={"pk": {"S": f"CONVERSATION#{conversation}"}, "sk": {"S": "CONVERSATION"}},
            ConsistentRead=True,
        )["Item"]
        case_id = mapping["caseId"]["S"]
        case_key = {"pk": {"S": f"CASE#{case_id}"}, "sk": {"S": "CASE"}}
        self.ddb.get_item(TableName=h.TABLE, Key=case_key, ConsistentRead=True)
        receipt = {"pk": {"S": f"WEBHOOK#{h.TENANT}#{event_id}"}, "sk": {"S": "RECEIPT"}}
        self.ddb.get_item(TableName=h.TABLE, Key=receipt, ConsistentRead=True)
        self.ddb.put_item(TableName=h.TABLE, Item=receipt)
        entry = {
            "pk": case_key["pk"],
            "sk": {"S": f"EVENT#{time.time_ns()}#{event_id}"},
            "type": {"S": event["eventType"]},
        }
        self.ddb.put_item(TableName=h.TABLE, Item=entry)
        self.ddb.update_item(
            TableName=h.TABLE,
            Key=case_key,
            UpdateExpression="SET lastEvent = :t",
            ExpressionAttributeValues={":t": {"S": event["eventType"]}},
        )
        self.events.put_events(
            Entries=[
                {
                    "Source": "casebridge",
                    "DetailType": event["eventType"],
                    "Detail": json.dumps({"caseId": case_id}),
                    "EventBusName": h.BUS,
                }
            ]
        )


@dataclass
class Batching:
    events: int
    cpu_us_per_event_single: float  # one PutEvents per event
    cpu_us_per_event_batched: float  # PutEvents of 10
    calls_single: int
    calls_batched: int


def _measure(log: h.CallLog, name: str, action: Any, repeats: int) -> Row:
    cpus: list[float] = []
    last: list[h.Call] = []
    for _ in range(repeats):
        with log.window() as taken:
            started = time.thread_time()
            action()
            cpus.append((time.thread_time() - started) * 1000)
        last = taken
    return Row(name, h.counts(last), statistics.median(cpus), runs=repeats, units=capacity_units(last))


def run(quick: bool = False) -> tuple[list[Row], Batching]:
    """The straightforward connector's steady-state message delivery and webhook event, and the publisher's
    CPU per event with and without batching, against moto as a server."""
    h.apply_environment()
    repeats = 3 if quick else 15
    log = h.CallLog()
    signer = h.new_signer()
    fake = h.Fake8x8(log, signer)
    with h.moto_server(), h.count_aws_calls(log), fake.serving():
        h.create_bench_resources()
        ddb = h.internal_client("dynamodb")
        ddb.put_item(
            TableName=h.TABLE,
            Item={
                "pk": {"S": "CASE#alt"},
                "sk": {"S": "CASE"},
                "conversationId": {"S": "conv-alt"},
                "caseId": {"S": "alt"},
            },
        )
        ddb.put_item(
            TableName=h.TABLE,
            Item={"pk": {"S": "CONVERSATION#conv-alt"}, "sk": {"S": "CONVERSATION"}, "caseId": {"S": "alt"}},
        )
        alt = StraightforwardConnector()
        alt.deliver("alt", "warm-up", "hello")  # clients and connections made, as in a warm container
        deliver = _measure(
            log, "straightforward: message delivery", lambda: alt.deliver("alt", str(uuid.uuid4()), "hello"), repeats
        )
        counter = iter(range(10**6))

        def one_webhook() -> None:
            event_id = f"alt-{next(counter)}"
            body = webhook_body("TEXT", "conv-alt", **EVENT_EXTRAS["TEXT"])
            alt.webhook({**h.webhook_headers(signer, body, event_id), "X-Event-Id": event_id}, body)

        one_webhook()
        webhook = _measure(log, "straightforward: webhook event", one_webhook, repeats)
        batching = _batching(alt.events, 50 if quick else 200)
    return [deliver, webhook], batching


def _batching(events: Any, count: int) -> Batching:
    entry = {
        "Source": "casebridge",
        "DetailType": "AgentMessage",
        "Detail": json.dumps({"caseId": "c", "conversationId": "v", "text": "x" * 200}),
        "EventBusName": h.BUS,
    }
    started = time.thread_time()
    for _ in range(count):
        events.put_events(Entries=[entry])
    single = (time.thread_time() - started) / count
    started = time.thread_time()
    for _ in range(count // 10):
        events.put_events(Entries=[entry] * 10)
    batched = (time.thread_time() - started) / (count // 10 * 10)
    return Batching(count, single * 1e6, batched * 1e6, count, count // 10)
