"""Attachments both ways (casebridge.attachments), on moto S3 with real pre-signed URLs (the tests PUT files to
them with requests) and real HTTP for 8x8's side of the copy (a local file server standing in for 8x8's
pre-signed URLs and its content endpoint)."""
# ruff: noqa: PLC0415 - casebridge imported after the environment is set

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import IO, Any, cast
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.support.aws import aws_client
from tests.support.connector import map_case, reset_casebridge
from tests.support.events import api_gateway_event, sqs_event
from tests.support.fakes import FakeContactCenter
from tests.support.samples import Answer, invoke
from tests.support.signing import WebhookSigner

BUCKET = "casebridge-attachments-test"
CASE = "case-att-1"
CONVERSATION = "conv-att-1"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@dataclass
class GatewayFake(FakeContactCenter):
    """The fake 8x8, speaking the Chat Gateway: uploads (read as requests would), rich messages, downloads."""

    api: str = "chat-gateway-v1"
    uploads: list[tuple[str, str, str, bytes]] = field(default_factory=list)
    rich: list[dict[str, Any]] = field(default_factory=list)
    content_url: str = ""  # where download_attachment fetches agent files

    def upload_attachment(
        self, conversation_id: str, author_type: str, file_name: str, content_type: str, body: bytes | IO[bytes]
    ) -> str:
        self._maybe_fail("upload")
        data = body if isinstance(body, bytes) else body.read()
        self.uploads.append((conversation_id, file_name, content_type, data))
        return f"cc-att-{len(self.uploads)}"

    def send_rich_message(self, conversation_id: str, message: Any) -> None:
        self._maybe_fail("rich")
        self.rich.append(
            {
                "conversationId": conversation_id,
                "authorType": message.author_type,
                "text": message.text,
                "attachments": list(message.attachment_ids),
                "cards": list(message.cards),
            }
        )

    def download_attachment(self, conversation_id: str, attachment_id: str) -> requests.Response:
        self._maybe_fail("download")
        response = requests.get(f"{self.content_url}/content/{attachment_id}", stream=True, timeout=5)
        if response.status_code == 404:
            from casebridge.errors import ContactCenterError

            raise ContactCenterError("not found", upstream_status=404)
        return response


class FileServer:
    """8x8's side of agent files: /signed/<name> (the pre-signed URL; 403 once `expired`) and /content/<id>."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[str, bytes]] = {}
        self.expired = False
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits.append(self.path)
                kind, _, name = self.path.lstrip("/").partition("/")
                if kind == "signed" and outer.expired:
                    self.send_response(403)
                    self.end_headers()
                    return
                found = outer.files.get(name.split("?")[0])
                if found is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                media_type, data = found
                self.send_response(200)
                self.send_header("Content-Type", media_type if kind == "signed" else "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    server = FileServer()
    yield server
    server.stop()


@pytest.fixture
def gateway(
    casebridge_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, jwk_fetcher: Any, file_server: FileServer
) -> SimpleNamespace:
    """casebridge on the Chat Gateway with the stack's bucket and copy queue (moto) and the fake 8x8."""
    from casebridge.contact_center.webhook_signature import JwkCache, WebhookVerifier
    from casebridge.services import build_services, set_services
    from casebridge.settings import get_settings

    aws_client("s3").create_bucket(Bucket=BUCKET)
    copy_queue = aws_client("sqs").create_queue(QueueName="attachment-copy")["QueueUrl"]
    for name, value in {
        "EIGHTXEIGHT_API": "chat-gateway-v1",
        "ATTACHMENTS_BUCKET_NAME": BUCKET,
        "ATTACHMENT_COPY_QUEUE_URL": copy_queue,
        "ATTACHMENT_MAX_BYTES": "4096",
        "ATTACHMENT_MAX_PER_MESSAGE": "2",
        "ATTACHMENT_INBOUND_MAX_BYTES": "8192",
        "ATTACHMENT_COPY_MAX_RECEIVES": "3",
        # The file server stands in for 8x8's file host, over http on loopback: both allowed explicitly.
        "ATTACHMENT_SOURCE_HOSTS": "127.0.0.1",
        "ATTACHMENT_SOURCES_LOOPBACK": "true",
    }.items():
        monkeypatch.setenv(name, value)
    reset_casebridge()
    built = build_services(get_settings())
    fake = GatewayFake(conversation_ids=[CONVERSATION], content_url=file_server.url)
    verifier = WebhookVerifier(built.settings.tenant_id, JwkCache(jwk_fetcher), tolerance_s=300)
    services = replace(built, contact_center=cast(Any, fake), verifier=verifier)
    set_services(services)
    return SimpleNamespace(services=services, fake=fake, copy_queue=copy_queue, files=file_server)


def call(module: Any, method: str, resource: str, body: Any = None, **path: str) -> Answer:
    event = api_gateway_event(
        method,
        resource,
        path_parameters={"caseId": CASE, **path},
        body=None if body is None else json.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    return invoke(module, event)


def offer(
    functions: SimpleNamespace, file_name: str = "shot.png", content_type: str = "image/png", size: int = len(PNG)
) -> Answer:
    body = {"fileName": file_name, "contentType": content_type, "size": size}
    return call(functions.outbound, "POST", "/cases/{caseId}/attachments", body)


def put(answer: Answer, data: bytes) -> requests.Response:
    return requests.put(answer.body["uploadUrl"], data=data, headers=answer.body["uploadHeaders"], timeout=5)


def post_message(functions: SimpleNamespace, **body: Any) -> Answer:
    return call(functions.outbound, "POST", "/cases/{caseId}/messages", body)


def queued(gateway: SimpleNamespace) -> list[dict[str, Any]]:
    url = gateway.services.settings.outbound_queue_url
    got = aws_client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in got]


# ---- upload URL -------------------------------------------------------------------------------------------------
def test_an_upload_url_binds_type_and_size_and_takes_the_file(gateway: SimpleNamespace, functions: Any) -> None:
    answer = offer(functions)
    assert answer.status == 201, answer.body
    url = urlsplit(answer.body["uploadUrl"])
    query = parse_qs(url.query)
    attachment_id = answer.body["attachmentId"]
    assert url.path.endswith(f"/cases/{CASE}/outbound/{attachment_id}")
    # S3 checks signed headers: a PUT of another type or length does not verify.
    assert set(query["X-Amz-SignedHeaders"][0].split(";")) >= {"content-length", "content-type", "host"}
    assert query["X-Amz-Expires"] == ["900"]
    assert answer.body["uploadMethod"] == "PUT"
    assert answer.body["uploadHeaders"] == {"Content-Type": "image/png"}
    assert put(answer, PNG).status_code == 200
    stored = aws_client("s3").get_object(Bucket=BUCKET, Key=f"cases/{CASE}/outbound/{attachment_id}")
    assert stored["Body"].read() == PNG
    record = gateway.services.store.get_attachments(CASE, [attachment_id])[attachment_id]
    assert record["size"] == len(PNG) and record["contentType"] == "image/png" and record["direction"] == "outbound"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"fileName": "a.exe", "contentType": "application/x-msdownload", "size": 10}, 415, "AttachmentTypeNotAllowed"),
        ({"fileName": "big.png", "contentType": "image/png", "size": 4097}, 413, "AttachmentTooLarge"),
        ({"fileName": "../x.png", "contentType": "image/png", "size": 10}, 400, "InvalidRequest"),
        ({"fileName": "x.png", "contentType": "image/png", "size": 0}, 400, "InvalidRequest"),
        ({"fileName": "x.png", "contentType": "image/png"}, 400, "InvalidRequest"),
    ],
)
def test_an_upload_outside_the_limits_is_refused(
    gateway: SimpleNamespace, functions: Any, body: dict[str, Any], status: int, code: str
) -> None:
    answer = call(functions.outbound, "POST", "/cases/{caseId}/attachments", body)
    assert (answer.status, answer.body["error"]["code"]) == (status, code), answer.body


def test_a_refused_upload_names_the_limit_it_crossed(gateway: SimpleNamespace, functions: Any) -> None:
    """The chat page tells the customer the limit (types allowed, largest size) from `details`."""
    path = "/cases/{caseId}/attachments"
    exe = call(
        functions.outbound, "POST", path, {"fileName": "a.exe", "contentType": "application/x-msdownload", "size": 10}
    )
    assert "image/png" in exe.body["error"]["details"]["allowedTypes"]
    big = call(functions.outbound, "POST", path, {"fileName": "big.png", "contentType": "image/png", "size": 4097})
    assert big.body["error"]["details"] == {"maxBytes": 4096}


# ---- accept time ------------------------------------------------------------------------------------------------
def test_a_message_with_an_uploaded_attachment_is_accepted_and_text_is_optional(
    gateway: SimpleNamespace, functions: Any
) -> None:
    upload = offer(functions)
    put(upload, PNG)
    answer = post_message(functions, attachments=[upload.body["attachmentId"]])
    assert answer.status == 202, answer.body
    [body] = queued(gateway)
    assert body["text"] == ""
    [attachment] = body["attachments"]
    assert attachment["attachmentId"] == upload.body["attachmentId"]
    assert (attachment["fileName"], attachment["contentType"], attachment["size"]) == (
        "shot.png",
        "image/png",
        len(PNG),
    )


def test_attachment_problems_are_4xx_at_accept_time(gateway: SimpleNamespace, functions: Any) -> None:
    never = offer(functions).body["attachmentId"]
    answer = post_message(functions, text="see", attachments=[never])
    assert (answer.status, answer.body["error"]["code"]) == (409, "AttachmentNotUploaded"), answer.body
    assert "never uploaded" in answer.body["error"]["message"]

    # S3 would refuse this PUT (signed length); moto does not check signatures, so the HEAD at accept time must.
    bigger = offer(functions, size=10)
    put(bigger, b"x" * 11)
    answer = post_message(functions, attachments=[bigger.body["attachmentId"]])
    assert (answer.status, answer.body["error"]["code"]) == (422, "AttachmentDoesNotMatch"), answer.body

    unknown = post_message(functions, attachments=["someone-elses"])
    assert (unknown.status, unknown.body["error"]["code"]) == (404, "AttachmentNotFound")

    ids = []
    for _ in range(3):
        upload = offer(functions)
        put(upload, PNG)
        ids.append(upload.body["attachmentId"])
    answer = post_message(functions, attachments=ids)
    assert (answer.status, answer.body["error"]["code"]) == (400, "TooManyAttachments")
    assert queued(gateway) == []


def test_another_cases_attachment_is_not_found(gateway: SimpleNamespace, functions: Any) -> None:
    upload = offer(functions)
    put(upload, PNG)
    event = api_gateway_event(
        "POST",
        "/cases/{caseId}/messages",
        path_parameters={"caseId": "other-case"},
        body=json.dumps({"attachments": [upload.body["attachmentId"]]}),
        headers={"Content-Type": "application/json"},
    )
    answer = invoke(functions.outbound, event)
    assert (answer.status, answer.body["error"]["code"]) == (404, "AttachmentNotFound")


def test_too_big_in_the_bucket_is_413(
    gateway: SimpleNamespace, functions: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload = offer(functions, size=4000)
    put(upload, b"y" * 4000)
    # The limit was lowered after the upload URL was given.
    monkeypatch.setattr(
        gateway.services, "settings", dataclasses.replace(gateway.services.settings, **{"attachment_max_bytes": 100})
    )
    answer = post_message(functions, attachments=[upload.body["attachmentId"]])
    assert (answer.status, answer.body["error"]["code"]) == (413, "AttachmentTooLarge")


def test_chat_api_v2_refuses_attachments_cards_and_typing_at_request_time(
    gateway: SimpleNamespace, functions: Any
) -> None:
    gateway.fake.api = "chat-api-v2"
    for answer in (
        offer(functions),
        post_message(functions, attachments=["abc"]),
        post_message(
            functions,
            authorType="bot",
            cards=[
                {
                    "contentType": "application/8x8.quick.replies",
                    "content": {"options": [{"title": "a", "data": {"postback": "a"}}]},
                }
            ],
        ),
        call(functions.outbound, "POST", "/cases/{caseId}/typing", {"authorType": "user"}),
        call(functions.lifecycle, "GET", "/cases/{caseId}/attachments/{attachmentId}", attachmentId="abc"),
    ):
        assert (answer.status, answer.body["error"]["code"]) == (400, "UnsupportedByContactCenterApi"), answer.body
        assert "chat-api-v2" in answer.body["error"]["message"]
    assert queued(gateway) == []


def test_an_old_queue_body_still_parses() -> None:
    from casebridge.outbound_queue import OutboundMessage

    old = '{"caseId":"c","messageId":"m","text":"hi","authorType":"user","acceptedAt":1,"redrive":0}'
    message = OutboundMessage.from_json(old)
    assert (message.attachments, message.cards) == ([], [])
    assert message.to_json() == old  # a text message writes the same body as before


# ---- delivery ---------------------------------------------------------------------------------------------------
def accepted_message(gateway: SimpleNamespace, functions: Any, **body: Any) -> tuple[Any, str]:
    """The accepted message as the sender receives it, with its receipt handle."""
    from casebridge.outbound_queue import OutboundMessage

    answer = post_message(functions, **body)
    assert answer.status == 202, answer.body
    url = gateway.services.settings.outbound_queue_url
    [received] = aws_client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    return OutboundMessage.from_json(received["Body"]), received["ReceiptHandle"]


def test_delivery_uploads_then_sends_and_a_retry_does_not_upload_again(
    gateway: SimpleNamespace, functions: Any
) -> None:
    from casebridge import messages
    from casebridge.errors import ContactCenterUnavailable

    map_case(CASE, CONVERSATION)
    upload = offer(functions)
    put(upload, PNG)
    message, receipt = accepted_message(gateway, functions, text="the error", attachments=[upload.body["attachmentId"]])
    gateway.fake.errors["rich"] = [ContactCenterUnavailable("8x8 down", upstream_status=503)]
    with pytest.raises(messages.RetryLater):
        messages.deliver_message(gateway.services, message, 1, receipt)
    assert messages.deliver_message(gateway.services, message, 2, receipt) == "sent"
    assert [u[1:] for u in gateway.fake.uploads] == [("shot.png", "image/png", PNG)]  # uploaded once
    assert gateway.fake.rich == [
        {
            "conversationId": CONVERSATION,
            "authorType": "user",
            "text": "the error",
            "attachments": ["cc-att-1"],
            "cards": [],
        }
    ]
    record = gateway.services.store.get_attachments(CASE, [upload.body["attachmentId"]])[upload.body["attachmentId"]]
    assert (record["contactCenterId"], record["contactCenterConversationId"]) == ("cc-att-1", CONVERSATION)
    assert gateway.fake.sent == []  # never sent as a plain text message as well


def test_a_file_gone_from_the_bucket_dead_letters_the_message(gateway: SimpleNamespace, functions: Any) -> None:
    from casebridge import messages

    map_case(CASE, CONVERSATION)
    upload = offer(functions)
    put(upload, PNG)
    message, receipt = accepted_message(gateway, functions, attachments=[upload.body["attachmentId"]])
    aws_client("s3").delete_object(Bucket=BUCKET, Key=f"cases/{CASE}/outbound/{upload.body['attachmentId']}")
    assert messages.deliver_message(gateway.services, message, 1, receipt) == "failed"
    assert gateway.fake.uploads == [] and gateway.fake.rich == []


def test_a_file_replaced_after_accept_is_not_sent(gateway: SimpleNamespace, functions: Any) -> None:
    from casebridge import messages

    map_case(CASE, CONVERSATION)
    upload = offer(functions)
    put(upload, PNG)
    message, receipt = accepted_message(gateway, functions, attachments=[upload.body["attachmentId"]])
    put(upload, PNG[::-1])  # the upload URL is still valid: same type and size, other bytes
    assert messages.deliver_message(gateway.services, message, 1, receipt) == "failed"
    assert gateway.fake.uploads == []


# ---- agent attachments ------------------------------------------------------------------------------------------
def agent_message(
    signer: WebhookSigner, files: list[dict[str, Any]], event_id: str = "evt-1"
) -> tuple[dict[str, str], bytes]:
    body = json.dumps(
        {
            "eventType": "MESSAGE",
            "conversationId": CONVERSATION,
            "timestamp": 1_700_000_000_000,
            "data": {
                "isEcho": False,
                "sender": {"id": "agent-7", "type": "agent"},
                "text": "here",
                "attachments": files,
            },
        }
    ).encode()
    return signer.headers(body, event_id=event_id), body


def copy_jobs(gateway: SimpleNamespace) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = (
        aws_client("sqs")
        .receive_message(QueueUrl=gateway.copy_queue, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"])
        .get("Messages", [])
    )
    return got


def run_copier(gateway: SimpleNamespace, messages: list[dict[str, Any]], receive_count: int = 1) -> dict[str, Any]:
    from tests.support.lambdas import LambdaContext, load_function

    copier = load_function("attachment_copier")
    for m in messages:
        m.setdefault("Attributes", {})["ApproximateReceiveCount"] = str(receive_count)
    result: dict[str, Any] = copier.lambda_handler(sqs_event(messages, "arn:aws:sqs:us-east-1:1:copy"), LambdaContext())
    return result


def test_an_agent_file_is_referenced_copied_and_served(
    gateway: SimpleNamespace, functions: Any, webhook_signer: WebhookSigner, event_bus: Any
) -> None:
    from casebridge import webhooks
    from casebridge.attachments.agent_files import take_in_agent_attachments

    map_case(CASE, CONVERSATION)
    pdf = b"%PDF-1.7 agent reply" * 50
    gateway.files.files["att-9"] = ("application/pdf", pdf)
    files = [
        {
            "id": "att-9",
            "type": "file",
            "fileName": "answer.pdf",
            "preSignedUrl": f"{gateway.files.url}/signed/att-9?sig=x",
        }
    ]
    headers, body = agent_message(webhook_signer, files)
    assert webhooks.handle_webhook(gateway.services, headers, body)["status"] == "accepted"
    [published] = [e["detail"] for e in event_bus.published() if e["detail-type"] == "AgentMessage"]
    [reference] = published["attachments"]
    assert reference["status"] == "pending" and reference["fileName"] == "answer.pdf" and reference["type"] == "file"
    assert "url" not in reference and "preSignedUrl" not in json.dumps(published)
    attachment_id = reference["attachmentId"]

    pending = call(functions.lifecycle, "GET", "/cases/{caseId}/attachments/{attachmentId}", attachmentId=attachment_id)
    assert (pending.status, pending.body["error"]["code"]) == (409, "AttachmentPending")
    assert pending.headers["retry-after"] == "2"

    # 8x8 delivers the event again: a duplicate. Had the first delivery failed after taking the files in (say the
    # publish failed), the retry would map them to the same references.
    assert webhooks.handle_webhook(gateway.services, *agent_message(webhook_signer, files))["status"] == "duplicate"
    again = take_in_agent_attachments(gateway.services, CASE, CONVERSATION, {"attachments": [{"id": "att-9"}]})
    assert again["attachments"][0]["attachmentId"] == attachment_id
    jobs = copy_jobs(gateway)
    assert {json.loads(j["Body"])["attachmentId"] for j in jobs} == {attachment_id}
    assert run_copier(gateway, jobs) == {"batchItemFailures": []}

    ready = call(functions.lifecycle, "GET", "/cases/{caseId}/attachments/{attachmentId}", attachmentId=attachment_id)
    assert ready.status == 302, ready.body
    location = ready.headers["location"]
    assert location == ready.body["url"] and f"/cases/{CASE}/inbound/{attachment_id}" in location
    served = requests.get(location, timeout=5)
    assert served.content == pdf
    assert served.headers["Content-Type"] == "application/pdf"
    assert 'filename="answer.pdf"' in served.headers["Content-Disposition"]
    assert gateway.files.hits == ["/signed/att-9?sig=x"]


def test_an_expired_url_falls_back_to_the_content_endpoint(
    gateway: SimpleNamespace, webhook_signer: WebhookSigner
) -> None:
    from casebridge import webhooks

    map_case(CASE, CONVERSATION)
    gateway.files.files["att-5"] = ("image/png", PNG)
    gateway.files.expired = True
    files = [{"id": "att-5", "type": "image", "fileName": "x.png", "preSignedUrl": f"{gateway.files.url}/signed/att-5"}]
    webhooks.handle_webhook(gateway.services, *agent_message(webhook_signer, files))
    assert run_copier(gateway, copy_jobs(gateway)) == {"batchItemFailures": []}
    assert gateway.files.hits == ["/signed/att-5", "/content/att-5"]
    [record] = gateway.services.store.get_attachments(CASE, [a for a in _inbound_ids(gateway)]).values()
    # The content endpoint says octet-stream: the type comes from the file name.
    assert (record["status"], record["contentType"], record["size"]) == ("ready", "image/png", len(PNG))


def _inbound_ids(gateway: SimpleNamespace) -> list[str]:
    from casebridge.attachments.agent_files import inbound_attachment_id

    return [inbound_attachment_id(CASE, CONVERSATION, i) for i in ("att-5", "att-6", "att-9")]


def test_a_copy_that_keeps_failing_is_retried_then_marked_failed(
    gateway: SimpleNamespace, functions: Any, webhook_signer: WebhookSigner
) -> None:
    from casebridge import webhooks
    from casebridge.errors import ContactCenterUnavailable

    map_case(CASE, CONVERSATION)
    files = [{"id": "att-6", "type": "file", "fileName": "x.pdf", "preSignedUrl": f"{gateway.files.url}/signed/att-6"}]
    gateway.files.expired = True
    webhooks.handle_webhook(gateway.services, *agent_message(webhook_signer, files))
    jobs = copy_jobs(gateway)
    gateway.fake.errors["download"] = [ContactCenterUnavailable("8x8 down", upstream_status=503) for _ in range(3)]
    assert run_copier(gateway, jobs, receive_count=1)["batchItemFailures"]  # back to the queue
    attachment_id = json.loads(jobs[0]["Body"])["attachmentId"]
    still = call(functions.lifecycle, "GET", "/cases/{caseId}/attachments/{attachmentId}", attachmentId=attachment_id)
    assert still.body["error"]["code"] == "AttachmentPending"
    assert run_copier(gateway, jobs, receive_count=3)["batchItemFailures"]  # last receive: on to the DLQ
    failed = call(functions.lifecycle, "GET", "/cases/{caseId}/attachments/{attachmentId}", attachmentId=attachment_id)
    assert (failed.status, failed.body["error"]["code"]) == (502, "AttachmentCopyFailed")
    # A redrive from the dead-letter queue that succeeds makes it ready after all.
    gateway.files.expired = False
    gateway.files.files["att-6"] = ("application/pdf", b"%PDF")
    assert run_copier(gateway, jobs, receive_count=1) == {"batchItemFailures": []}
    ok = call(functions.lifecycle, "GET", "/cases/{caseId}/attachments/{attachmentId}", attachmentId=attachment_id)
    assert ok.status == 302


def test_an_agent_file_over_the_limit_is_failed_not_retried(
    gateway: SimpleNamespace, webhook_signer: WebhookSigner
) -> None:
    from casebridge import webhooks

    map_case(CASE, CONVERSATION)
    gateway.files.files["att-5"] = ("image/png", b"z" * 9000)
    files = [
        {"id": "att-5", "type": "image", "fileName": "big.png", "preSignedUrl": f"{gateway.files.url}/signed/att-5"}
    ]
    webhooks.handle_webhook(gateway.services, *agent_message(webhook_signer, files))
    assert run_copier(gateway, copy_jobs(gateway)) == {"batchItemFailures": []}
    [record] = gateway.services.store.get_attachments(CASE, _inbound_ids(gateway)).values()
    assert record["status"] == "failed" and "larger than 8192" in record["reason"]


def test_unknown_attachment_is_404(gateway: SimpleNamespace, functions: Any) -> None:
    for attachment_id in ("nope", "bad%2Fid"):
        answer = call(
            functions.lifecycle, "GET", "/cases/{caseId}/attachments/{attachmentId}", attachmentId=attachment_id
        )
        assert (answer.status, answer.body["error"]["code"]) == (404, "AttachmentNotFound")


def test_an_uploaded_customer_file_can_be_read_back(gateway: SimpleNamespace, functions: Any) -> None:
    upload = offer(functions)
    attachment_id = upload.body["attachmentId"]
    answer = call(functions.lifecycle, "GET", "/cases/{caseId}/attachments/{attachmentId}", attachmentId=attachment_id)
    assert (answer.status, answer.body["error"]["code"]) == (409, "AttachmentNotUploaded")
    put(upload, PNG)
    answer = call(functions.lifecycle, "GET", "/cases/{caseId}/attachments/{attachmentId}", attachmentId=attachment_id)
    assert answer.status == 302
    assert requests.get(answer.headers["location"], timeout=5).content == PNG


def test_an_agent_file_that_arrives_before_the_case_knows_its_conversation_is_referenced_and_copied(
    gateway: SimpleNamespace, functions: Any, webhook_signer: WebhookSigner, event_bus: Any
) -> None:
    """The agent's file comes before the case learns its conversation (an early event). When the case takes it
    in, the published AgentMessage carries casebridge's reference (never 8x8's URL) and the copy job is queued."""
    from casebridge import webhooks

    gateway.files.files["att-early"] = ("application/pdf", b"%PDF early")
    url = f"{gateway.files.url}/signed/att-early?sig=x"
    files = [{"id": "att-early", "type": "file", "fileName": "early.pdf", "preSignedUrl": url}]
    assert webhooks.handle_webhook(gateway.services, *agent_message(webhook_signer, files))["status"] == "kept"
    opened = call(functions.lifecycle, "POST", "/cases/{caseId}/conversation", {})
    assert opened.status == 201, opened.raw
    [published] = [e["detail"] for e in event_bus.published() if e["detail-type"] == "AgentMessage"]
    [reference] = published["attachments"]
    assert reference["status"] == "pending" and reference["fileName"] == "early.pdf"
    assert "url" not in reference and url not in json.dumps(published)
    jobs = copy_jobs(gateway)
    assert [json.loads(j["Body"])["attachmentId"] for j in jobs] == [reference["attachmentId"]]
