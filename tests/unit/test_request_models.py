"""The business API's request models (business_api.models, msgspec): what they refuse and how they name it."""

from __future__ import annotations

from typing import Any

import pytest

from casebridge.business_api.models import (
    AttachmentUploadRequest,
    OpenConversationRequest,
    PostMessageRequest,
    RequestInvalid,
    validate,
)
from casebridge.cases import open_request_hash

OPEN_BODY: dict[str, Any] = {
    "customer": {"name": "Ada", "customerId": "c-1", "properties": {"tier": "gold"}},
    "routing": {"type": "queue", "id": "q1"},
    "history": [{"authorType": "bot", "text": "Hello"}],
    "channelId": "web",
}


def test_open_request_hash_is_the_one_stored_before() -> None:
    """Cases keep this hash to tell a retried open from a different one: it may not change with the library
    that validates the body (the value is what the pydantic models gave, before msgspec replaced them)."""
    request = validate(OpenConversationRequest, OPEN_BODY)
    assert open_request_hash(request) == "12632593d0f4e03b152595176c8afb08529605e6d87321eee34537f5482750cc"


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        (PostMessageRequest, {"text": "hi", "clientMessageId": "m-1\n"}, "clientMessageId"),  # $ would pass it
        (OpenConversationRequest, {"channelId": "web\n"}, "channelId"),
        (OpenConversationRequest, {"customer": {"language": "en\n"}}, "customer.language"),
        (PostMessageRequest, {"text": "hi", "author_type": "bot"}, "author_type"),  # wire names only
        (OpenConversationRequest, {"customer": {"nickname": "A"}}, "customer.nickname"),
        (AttachmentUploadRequest, {"fileName": "a.png", "contentType": "image/png", "size": "5"}, "size"),
        (AttachmentUploadRequest, {"fileName": "a.png", "contentType": "image/png", "size": True}, "size"),
        (AttachmentUploadRequest, {"fileName": "a.png", "contentType": "image/png", "size": 0}, "size"),
        (
            OpenConversationRequest,
            {"history": [{"authorType": "user", "text": "x"}, {"authorType": "u"}]},
            "history.1.authorType",
        ),
        (OpenConversationRequest, {"customer": {"properties": {"email": "x"}}}, "customer.properties"),
        (PostMessageRequest, {}, "body"),
        (PostMessageRequest, [], "body"),
    ],
)
def test_each_refusal_names_the_field(model: type[Any], body: Any, field: str) -> None:
    with pytest.raises(RequestInvalid) as raised:
        validate(model, body)
    assert raised.value.field == field
    assert raised.value.message and "$" not in raised.value.message


def test_a_valid_body_reads_under_python_names() -> None:
    request = validate(PostMessageRequest, {"text": "hi", "authorType": "bot", "clientMessageId": "m-1"})
    assert (request.text, request.author_type, request.client_message_id, request.is_rich) == (
        "hi",
        "bot",
        "m-1",
        False,
    )
