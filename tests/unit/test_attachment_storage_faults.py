"""The attachment bucket as S3 really answers: a transient error (SlowDown, 503, 500, throttling, a dropped
connection) is retried like any transient failure, not dead-lettered at the first attempt; and a file that was
never uploaded is 409 on POST /messages and GET, also when S3 answers 403 for a missing key (as it does to a role
without s3:ListBucket), because the listing granted on the outbound prefix tells a missing key from a refusal.

S3 is moto; what moto does not do (IAM's answer for a missing key, throttling) is injected on the bucket's own
client, before botocore sends the call."""
# ruff: noqa: PLC0415, F811 - casebridge imported after the environment is set; the fixtures are imported

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from botocore.exceptions import ConnectionClosedError

from tests.support.aws import aws_client
from tests.support.connector import map_case
from tests.unit.test_attachments import (  # the Gateway stack with its bucket, and its request helpers
    BUCKET,
    CASE,
    CONVERSATION,
    PNG,
    accepted_message,
    call,
    file_server,  # noqa: F401 - a fixture gateway needs
    gateway,  # noqa: F401 - the fixture
    offer,
    post_message,
    put,
)

Answer = Callable[..., Any]


def s3_answers(gateway: SimpleNamespace, operation: str, status: int, code: str) -> list[bool]:
    """While the returned switch holds True, the bucket answers `operation` with `status` and `code` (S3's error),
    however often botocore asks."""
    from casebridge.attachments.storage import bucket

    down = [True]
    client = bucket(gateway.services).client
    error = {"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": status}}

    def answer(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if not down[0]:
            return None
        return AWSResponse("https://s3.test", status, HTTPHeaders(), None), error

    client.meta.events.register_first(f"before-call.s3.{operation}", answer)  # type: ignore[arg-type]
    return down


def head_of_a_missing_key_is_403(gateway: SimpleNamespace) -> None:
    """S3's answer to HeadObject of a missing key for a role without s3:ListBucket: 403, not 404."""
    from casebridge.attachments.storage import bucket

    client = bucket(gateway.services).client
    keys: list[str] = []
    client.meta.events.register("provide-client-params.s3.HeadObject", lambda params, **_: keys.append(params["Key"]))

    def answer(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        key = keys[-1]
        listed = aws_client("s3").list_objects_v2(Bucket=BUCKET, Prefix=key).get("Contents", [])
        if any(item["Key"] == key for item in listed):
            return None
        response = AWSResponse("https://s3.test", 403, HTTPHeaders(), None)
        return response, {"Error": {"Code": "403", "Message": "Forbidden"}, "ResponseMetadata": {"HTTPStatusCode": 403}}

    client.meta.events.register_first("before-call.s3.HeadObject", answer)  # type: ignore[arg-type]


# ---- transient S3 errors during delivery --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "code"),
    [(503, "SlowDown"), (503, "ServiceUnavailable"), (500, "InternalError"), (400, "RequestTimeout")],
)
def test_a_transient_s3_error_while_delivering_a_file_is_retried_not_dead_lettered(
    gateway: SimpleNamespace, functions: Any, status: int, code: str
) -> None:
    from casebridge import messages

    map_case(CASE, CONVERSATION)
    upload = offer(functions)
    put(upload, PNG)
    message, receipt = accepted_message(gateway, functions, text="the file", attachments=[upload.body["attachmentId"]])
    down = s3_answers(gateway, "GetObject", status, code)
    with pytest.raises(messages.RetryLater):
        messages.deliver_message(gateway.services, message, 1, receipt)
    dlq = gateway.services.queue.dead_letter_queue_url
    assert aws_client("sqs").receive_message(QueueUrl=dlq).get("Messages", []) == []
    down[0] = False
    assert messages.deliver_message(gateway.services, message, 2, receipt) == "sent"
    assert [u[3] for u in gateway.fake.uploads] == [PNG]


def test_a_connection_dropped_by_s3_while_delivering_a_file_is_retried(
    gateway: SimpleNamespace, functions: Any
) -> None:
    from casebridge import messages
    from casebridge.attachments.storage import bucket

    map_case(CASE, CONVERSATION)
    upload = offer(functions)
    put(upload, PNG)
    message, receipt = accepted_message(gateway, functions, attachments=[upload.body["attachmentId"]])
    down = [True]

    def drop(**_: Any) -> None:
        if down[0]:
            raise ConnectionClosedError(endpoint_url="https://s3.test")

    bucket(gateway.services).client.meta.events.register_first("before-send.s3.GetObject", drop)
    with pytest.raises(messages.RetryLater):
        messages.deliver_message(gateway.services, message, 1, receipt)
    down[0] = False
    assert messages.deliver_message(gateway.services, message, 2, receipt) == "sent"


def test_a_file_refused_by_s3_for_good_is_still_dead_lettered(gateway: SimpleNamespace, functions: Any) -> None:
    """AccessDenied is the stack's configuration: retrying does not fix it (dead letter + MessageFailed)."""
    from casebridge import messages

    map_case(CASE, CONVERSATION)
    upload = offer(functions)
    put(upload, PNG)
    message, receipt = accepted_message(gateway, functions, attachments=[upload.body["attachmentId"]])
    s3_answers(gateway, "GetObject", 403, "AccessDenied")
    assert messages.deliver_message(gateway.services, message, 1, receipt) == "failed"


def test_a_transient_s3_error_checking_a_file_at_accept_time_is_503_not_500(
    gateway: SimpleNamespace, functions: Any
) -> None:
    upload = offer(functions)
    put(upload, PNG)
    s3_answers(gateway, "HeadObject", 503, "SlowDown")
    answer = post_message(functions, text="x", attachments=[upload.body["attachmentId"]])
    assert answer.status == 503, answer.body
    assert "retry-after" in answer.headers


# ---- a never-uploaded file: 409 whatever S3 answers for a missing key ----------------------------------------
def test_a_never_uploaded_file_is_409_on_post_messages_when_s3_answers_403_for_a_missing_key(
    gateway: SimpleNamespace, functions: Any
) -> None:
    upload = offer(functions)  # the upload URL is never used
    head_of_a_missing_key_is_403(gateway)
    answer = post_message(functions, text="x", attachments=[upload.body["attachmentId"]])
    assert (answer.status, answer.body["error"]["code"]) == (409, "AttachmentNotUploaded"), answer.body


def test_a_never_uploaded_file_is_409_on_get_when_s3_answers_403_for_a_missing_key(
    gateway: SimpleNamespace, functions: Any
) -> None:
    upload = offer(functions)
    head_of_a_missing_key_is_403(gateway)
    path = "/cases/{caseId}/attachments/{attachmentId}"
    answer = call(functions.lifecycle, "GET", path, attachmentId=upload.body["attachmentId"])
    assert (answer.status, answer.body["error"]["code"]) == (409, "AttachmentNotUploaded"), answer.body


def test_an_uploaded_file_is_still_found_and_a_real_refusal_is_not_taken_for_missing(
    gateway: SimpleNamespace, functions: Any
) -> None:
    upload = offer(functions)
    put(upload, PNG)
    head_of_a_missing_key_is_403(gateway)
    assert post_message(functions, text="x", attachments=[upload.body["attachmentId"]]).status == 202
    other = offer(functions)
    put(other, PNG)
    s3_answers(gateway, "HeadObject", 403, "AccessDenied")  # the object is there: a real refusal
    answer = post_message(functions, text="x", attachments=[other.body["attachmentId"]])
    assert answer.status == 500, answer.body
