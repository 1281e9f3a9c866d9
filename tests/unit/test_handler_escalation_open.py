"""Through the real handler: GET /queues/{queueId}/availability, and an open that asks to be refused when
nobody answers (409 QueueUnavailable, no 8x8 call) on both 8x8 APIs. Hours come from an SSM parameter."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest

from casebridge.escalation.availability import QueueFiguresCache
from casebridge.escalation.metrics import MetricsUnavailable, QueueFigures
from casebridge.escalation.wiring import EscalationParts
from tests.support.aws import aws_client
from tests.support.fakes import FakeContactCenter
from tests.support.samples import invoke, load_event, sample_api_event

HOURS_PARAMETER = "/casebridge/business-hours"
CLOSED = {"queues": {"q-closed": {"timeZone": "Europe/Paris", "weekly": {}}}}


class Figures:
    def __init__(self, figures: QueueFigures | None) -> None:
        self.figures = figures
        self.calls = 0

    def queue_figures(self, queue_id: str) -> QueueFigures:
        self.calls += 1
        if self.figures is None:
            raise MetricsUnavailable("metrics answered 503")
        return self.figures


@pytest.fixture(params=["chat-gateway-v1", "chat-api-v2"])
def escalation(
    request: pytest.FixtureRequest, casebridge_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> SimpleNamespace:
    aws_client("ssm").put_parameter(Name=HOURS_PARAMETER, Type="String", Value=json.dumps(CLOSED))
    monkeypatch.setenv("BUSINESS_HOURS_PARAMETER", HOURS_PARAMETER)
    monkeypatch.setenv("EIGHTXEIGHT_API", request.param)
    monkeypatch.setenv("EIGHTXEIGHT_QUEUE_ID", "q-closed")
    services = request.getfixturevalue("services")
    fake: FakeContactCenter = request.getfixturevalue("fake_8x8")
    fake.api = request.param
    source = Figures(QueueFigures(available=1, eligible=1, waiting=0))
    services.escalation = EscalationParts(QueueFiguresCache(services.store, source), HOURS_PARAMETER)
    return SimpleNamespace(services=services, fake=fake, source=source)


def availability(functions: SimpleNamespace, queue_id: str) -> Any:
    event = sample_api_event("queue_availability.json")
    event["path"] = f"/queues/{queue_id}/availability"
    event["pathParameters"] = {"queueId": queue_id}
    return invoke(functions.lifecycle, event)


def open_case(functions: SimpleNamespace, body: dict[str, Any], case_id: str = "case-9") -> Any:
    return invoke(functions.lifecycle, sample_api_event("open_conversation.json", case_id=case_id, body=body))


def test_the_sample_answers_with_the_documented_shape(functions: SimpleNamespace, escalation: Any) -> None:
    answer = invoke(functions.lifecycle, sample_api_event("queue_availability.json"))
    assert answer.status == 200, answer.raw
    assert set(answer.body) == {
        "queueId", "open", "reason", "agentsAvailable", "waiting", "longestWaitSeconds",
        "estimatedWaitSeconds", "asOf", "hours",
    }  # fmt: skip
    body = answer.body
    assert (body["queueId"], body["reason"], body["agentsAvailable"]) == ("queue-support", "open", 1)


def test_a_closed_queue_says_so_with_its_hours(functions: SimpleNamespace, escalation: Any) -> None:
    answer = availability(functions, "q-closed")
    assert answer.status == 200
    assert (answer.body["open"], answer.body["reason"]) == (False, "closed")
    assert answer.body["hours"]["timeZone"] == "Europe/Paris"
    assert escalation.source.calls == 0


def test_a_bad_queue_id_is_a_400(functions: SimpleNamespace, escalation: Any) -> None:
    answer = availability(functions, "q%2Fx")
    assert answer.status == 400 and answer.body["error"]["code"] == "InvalidRequest"


def test_refuse_outside_hours_is_a_409_and_no_call_to_8x8(functions: SimpleNamespace, escalation: Any) -> None:
    answer = open_case(functions, {"whenUnavailable": "refuse"})
    assert answer.status == 409, answer.raw
    assert answer.body["error"]["code"] == "QueueUnavailable"
    assert answer.body["availability"]["reason"] == "closed"
    assert escalation.fake.created == []
    assert escalation.services.store.get_case("case-9") is None


def test_refuse_with_an_open_queue_opens_and_the_options_reach_neither_8x8_nor_the_hash(
    functions: SimpleNamespace, escalation: Any
) -> None:
    routed = {"routing": {"type": "queue", "id": "q-open"}, "whenUnavailable": "refuse", "onQueueTimeout": "handback"}
    if escalation.fake.api == "chat-api-v2":
        routed.pop("routing")
        escalation.services.settings = replace(escalation.services.settings, queue_id="q-open")  # the channel's queue
    answer = open_case(functions, routed)
    assert answer.status == 201, answer.raw
    assert len(escalation.fake.created) == 1
    again = open_case(functions, {k: v for k, v in routed.items() if k == "routing"})
    assert again.status == 200, again.raw  # the same open without the options is the same request
    item = aws_client("dynamodb").get_item(
        TableName=escalation.services.store.table, Key={"pk": {"S": "CASE#case-9"}, "sk": {"S": "CASE"}}
    )["Item"]
    assert item["onQueueTimeout"] == {"S": "handback"}


def test_queue_is_the_default_and_metrics_down_never_refuses(functions: SimpleNamespace, escalation: Any) -> None:
    escalation.fake.conversation_ids = ["conv-a", "conv-b"]
    assert open_case(functions, {}, case_id="case-a").status == 201  # closed, but not asked to refuse
    escalation.source.figures = None
    escalation.services.settings = replace(escalation.services.settings, queue_id="q-open")
    answer = open_case(functions, {"whenUnavailable": "refuse"}, case_id="case-b")
    assert answer.status == 201, answer.raw  # unknown: opened, never a 5xx
    assert availability(functions, "q-open").body["reason"] == "unknown"


def test_no_agents_refuses(functions: SimpleNamespace, escalation: Any) -> None:
    escalation.source.figures = QueueFigures(available=0, eligible=0, waiting=4)
    escalation.services.settings = replace(escalation.services.settings, queue_id="q-empty")
    answer = open_case(functions, {"whenUnavailable": "refuse"})
    assert answer.status == 409 and answer.body["availability"]["reason"] == "no-agents"
    assert answer.body["availability"]["waiting"] == 4


def test_bad_options_are_400(functions: SimpleNamespace, escalation: Any) -> None:
    answer = open_case(functions, {"whenUnavailable": "maybe"})
    assert answer.status == 400 and answer.body["error"]["details"][0]["field"] == "whenUnavailable"


def test_the_refuse_sample_is_refused_when_closed_and_opens_when_someone_answers(
    functions: SimpleNamespace, escalation: Any
) -> None:
    """events/open_conversation_refuse.json as it is: the channel's queue (EIGHTXEIGHT_QUEUE_ID) decides."""
    refused = invoke(functions.lifecycle, load_event("open_conversation_refuse.json"))
    assert refused.status == 409, refused.raw
    assert (refused.body["error"]["code"], refused.body["availability"]["reason"]) == ("QueueUnavailable", "closed")
    assert escalation.fake.created == []
    escalation.services.settings = replace(escalation.services.settings, queue_id="q-open")
    opened = invoke(functions.lifecycle, load_event("open_conversation_refuse.json"))
    assert opened.status == 201, opened.raw
    assert len(escalation.fake.created) == 1
    item = aws_client("dynamodb").get_item(
        TableName=escalation.services.store.table, Key={"pk": {"S": "CASE#case-1001"}, "sk": {"S": "CASE"}}
    )["Item"]
    assert item["onQueueTimeout"] == {"S": "handback"}
