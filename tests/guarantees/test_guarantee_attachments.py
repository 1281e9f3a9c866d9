"""Attachments, end to end on the Chat Gateway: the real handlers, S3/SQS/DynamoDB in moto, the 8x8 emulator over
real HTTP (its multipart upload, its pre-signed URLs and its signed webhooks).

- a customer's screenshot reaches 8x8 in order with the case's text messages;
- an agent's PDF is copied into the bucket and the business downloads it through the redirect;
- a failing upload (or a failing send after the upload) is retried without a duplicate in 8x8;
- on Chat API v2 each rich feature is a 400 at request time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from cc_emulator import EmulatorServer
from tests.guarantees.cb_guarantees_harness import Harness, MetricsRecorder, WebhookBridge, connect_harness
from tests.support.aws import AwsResources, aws_client
from tests.support.connector import reset_casebridge
from tests.support.events import api_gateway_event, sqs_event
from tests.support.lambdas import LambdaContext, load_function

BUCKET = "casebridge-attachments-guarantees"
SCREENSHOT = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64  # 16 KiB


class Gateway:
    """The harness on the Chat Gateway, plus the attachment calls of the business API and the copier."""

    def __init__(self, harness: Harness, copy_queue: str) -> None:
        self.h = harness
        self.copy_queue = copy_queue
        self.copier = load_function("attachment_copier")

    def api(self, module: Any, method: str, resource: str, body: Any = None, **path: str) -> dict[str, Any]:
        event = api_gateway_event(
            method,
            resource,
            path_parameters=path,
            body=None if body is None else json.dumps(body),
            headers={"Content-Type": "application/json"},
        )
        answer: dict[str, Any] = module.lambda_handler(event, LambdaContext())
        answer["json"] = json.loads(answer["body"]) if answer.get("body") else None
        headers = {k.lower(): v for k, v in (answer.get("headers") or {}).items()}
        for k, v in (answer.get("multiValueHeaders") or {}).items():
            headers.setdefault(k.lower(), v[0] if isinstance(v, list) and v else v)
        answer["headers"] = headers
        return answer

    def upload(self, case_id: str, data: bytes, file_name: str = "screenshot.png") -> str:
        offered = self.api(
            self.h.outbound,
            "POST",
            "/cases/{caseId}/attachments",
            {"fileName": file_name, "contentType": "image/png", "size": len(data)},
            caseId=case_id,
        )
        assert offered["statusCode"] == 201, offered
        put = requests.put(offered["json"]["uploadUrl"], data=data, headers=offered["json"]["uploadHeaders"], timeout=5)
        assert put.status_code == 200
        return str(offered["json"]["attachmentId"])

    def post(self, case_id: str, **body: Any) -> dict[str, Any]:
        return self.api(self.h.outbound, "POST", "/cases/{caseId}/messages", body, caseId=case_id)

    def copy_all(self, timeout: float = 10.0) -> int:
        """The copier's event source in miniature: run every job on the copy queue until it is empty."""
        sqs = aws_client("sqs")
        copied = 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = sqs.receive_message(
                QueueUrl=self.copy_queue, MaxNumberOfMessages=5, MessageSystemAttributeNames=["All"]
            ).get("Messages", [])
            if not got:
                return copied
            answer = self.copier.lambda_handler(sqs_event(got, "arn:aws:sqs:us-east-1:1:copy"), LambdaContext())
            failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
            for m in got:
                if m["MessageId"] not in failed:
                    sqs.delete_message(QueueUrl=self.copy_queue, ReceiptHandle=m["ReceiptHandle"])
                    copied += 1
        raise TimeoutError("copy queue not drained")


@pytest.fixture
def gateway(
    aws_resources: AwsResources,
    emulator_server: EmulatorServer,
    metrics_recorder: MetricsRecorder,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Gateway]:
    aws_client("s3").create_bucket(Bucket=BUCKET)
    copy_queue = aws_client("sqs").create_queue(QueueName="attachment-copy")["QueueUrl"]
    bridge = WebhookBridge()
    url = bridge.start()
    for name, value in {
        "EIGHTXEIGHT_API": "chat-gateway-v1",
        "EIGHTXEIGHT_BASE_URL": emulator_server.base_url,
        "EIGHTXEIGHT_TENANT_ID": emulator_server.config.tenant_id,
        "ATTACHMENTS_BUCKET_NAME": BUCKET,
        "ATTACHMENT_COPY_QUEUE_URL": copy_queue,
        "ATTACHMENT_SOURCES_LOOPBACK": "true",  # the emulator serves files over http on loopback
    }.items():
        monkeypatch.setenv(name, value)
    h = connect_harness(emulator_server, bridge, url, aws_resources, metrics_recorder, monkeypatch, "chat-gateway-v1")
    try:
        yield Gateway(h, copy_queue)
    finally:
        bridge.stop()
        reset_casebridge()


def user_messages(gw: Gateway, conversation_id: str) -> list[dict[str, Any]]:
    transcript = gw.h.engine.transcript(conversation_id)["transcript"]
    return [m for m in transcript if m["authorType"] == "user" and not m["history"]]


def test_a_customer_screenshot_reaches_8x8_in_order_with_the_text(gateway: Gateway) -> None:
    gw = gateway
    assert gw.h.open_case("case-shot")["statusCode"] == 201
    gw.post("case-shot", text="the app crashes")
    attachment_id = gw.upload("case-shot", SCREENSHOT)
    assert gw.post("case-shot", text="here is the screen", attachments=[attachment_id])["statusCode"] == 202
    gw.post("case-shot", text="it happens every time")
    gw.h.drain()
    conversation_id = gw.h.case_conversation("case-shot")
    assert conversation_id
    sent = user_messages(gw, conversation_id)
    assert [m["text"] for m in sent] == ["the app crashes", "here is the screen", "it happens every time"]
    [stored] = gw.h.engine.transcript(conversation_id)["attachments"]
    assert sent[1]["attachments"] == [stored["id"]]
    assert (stored["filename"], stored["contentType"], stored["size"]) == (
        "screenshot.png",
        "image/png",
        len(SCREENSHOT),
    )
    assert gw.h.engine.get_attachment(conversation_id, stored["id"]).data == SCREENSHOT


def test_an_agent_pdf_is_copied_and_served_through_the_redirect(gateway: Gateway) -> None:
    gw = gateway
    gw.h.open_case("case-pdf")
    gw.post("case-pdf", text="can you send the invoice?")
    gw.h.drain()
    gw.h.settle()
    conversation_id = gw.h.case_conversation("case-pdf")
    assert conversation_id
    agent = gw.h.engine.transcript(conversation_id)["interactions"][-1]["agentId"]
    pdf = b"%PDF-1.7\n" + b"invoice line\n" * 2000
    gw.h.engine.agent_typing(agent, True)
    gw.h.engine.agent_reply(agent, "here it is", attachments=[("invoice.pdf", "application/pdf", pdf)])
    gw.h.settle()
    published = [e for e in gw.h.faults.published if e["DetailType"] == "AgentMessage" and e.get("attachments")]
    [message] = published
    [reference] = message["attachments"]
    assert (reference["fileName"], reference["status"], reference["type"]) == ("invoice.pdf", "pending", "file")
    assert [e["typing"] for e in gw.h.faults.published if e["DetailType"] == "AgentTyping"][:1] == [True]
    path = {"caseId": "case-pdf", "attachmentId": reference["attachmentId"]}
    pending = gw.api(gw.h.lifecycle, "GET", "/cases/{caseId}/attachments/{attachmentId}", **path)
    assert (pending["statusCode"], pending["json"]["error"]["code"]) == (409, "AttachmentPending")
    assert gw.copy_all() == 1
    ready = gw.api(gw.h.lifecycle, "GET", "/cases/{caseId}/attachments/{attachmentId}", **path)
    assert ready["statusCode"] == 302, ready
    served = requests.get(ready["headers"]["location"], timeout=5)
    assert served.content == pdf
    assert served.headers["Content-Type"] == "application/pdf"
    # The timeline keeps casebridge's reference, never 8x8's URL (which expires).
    [entry] = [e for e in gw.h.timeline("case-pdf") if e["type"] == "AgentMessage" and e["detail"].get("attachments")]
    assert "_storage" not in json.dumps(entry, default=str)


@pytest.mark.parametrize("failing", ["upload_attachment", "post_message"])
def test_a_failing_upload_or_send_is_retried_without_a_duplicate(gateway: Gateway, failing: str) -> None:
    gw = gateway
    gw.h.open_case("case-retry")
    attachment_id = gw.upload("case-retry", SCREENSHOT)
    gw.h.emulator.add_fault("status", failing, count=2, status=503)
    assert gw.post("case-retry", text="screen", attachments=[attachment_id])["statusCode"] == 202
    gw.h.drain()
    conversation_id = gw.h.case_conversation("case-retry")
    assert conversation_id
    [sent] = user_messages(gw, conversation_id)
    transcript = gw.h.engine.transcript(conversation_id)
    assert len(transcript["attachments"]) == 1  # uploaded once, whichever call failed
    assert sent["attachments"] == [transcript["attachments"][0]["id"]]
    assert gw.h.metrics.counts["MessagesDelivered"] == 1


def test_chat_api_v2_answers_400_to_each_rich_feature(harness: Harness) -> None:
    """The default harness speaks Chat API v2."""
    harness.open_case("case-v2")
    outbound, lifecycle = harness.outbound, harness.lifecycle
    cards = [
        {
            "contentType": "application/8x8.quick.replies",
            "content": {"options": [{"title": "a", "data": {"postback": "a"}}]},
        }
    ]
    calls = [
        (outbound, "POST", "/cases/{caseId}/attachments", {"fileName": "a.png", "contentType": "image/png", "size": 3}),
        (outbound, "POST", "/cases/{caseId}/messages", {"text": "x", "attachments": ["abc"]}),
        (outbound, "POST", "/cases/{caseId}/messages", {"authorType": "bot", "text": "x", "cards": cards}),
        (outbound, "POST", "/cases/{caseId}/typing", {"authorType": "user"}),
        (lifecycle, "POST", "/cases/{caseId}/conversation", {"history": [{"authorType": "bot", "cards": cards}]}),
    ]
    for module, method, resource, body in calls:
        event = api_gateway_event(
            method,
            resource,
            path_parameters={"caseId": "case-v2"},
            body=json.dumps(body),
            headers={"Content-Type": "application/json"},
        )
        answer = module.lambda_handler(event, LambdaContext())
        error = json.loads(answer["body"])["error"]
        assert (answer["statusCode"], error["code"]) == (400, "UnsupportedByContactCenterApi"), (resource, answer)
        assert "chat-api-v2" in error["message"]
    assert harness.queue_depth() == 0
