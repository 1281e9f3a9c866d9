"""The business API's request models (business_api.models, msgspec): what they refuse and how they name it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import msgspec
import pytest

from casebridge.business_api.models import (
    PATTERN_WORDS,
    AttachmentUploadRequest,
    OpenConversationRequest,
    PostMessageRequest,
    RequestInvalid,
    TypingRequest,
    validate,
)
from casebridge.cases import open_request_hash
from tests.support.paths import ROOT

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


@pytest.mark.parametrize(
    ("model", "body", "summary"),
    [
        (PostMessageRequest, {"text": " \n "}, "text must contain at least one non-space character"),
        (PostMessageRequest, {"text": "x" * 5000}, "text must be at most 4096 characters"),
        (PostMessageRequest, {"text": ""}, "text must not be empty"),
        (PostMessageRequest, {"text": 5}, "text must be a string, not a whole number"),
        (PostMessageRequest, {"text": "hi", "authorType": "agent"}, "authorType must be one of: bot, user"),
        (PostMessageRequest, {"text": "hi", "attachments": ["a"] * 51}, "attachments must have at most 50 items"),
        (
            PostMessageRequest,
            {"text": "hi", "attachments": ["a/b"]},
            "attachments.0 must be 1 to 64 characters of A-Z a-z 0-9 _ -",
        ),
        (
            PostMessageRequest,
            {"text": "hi", "clientMessageId": "a b"},
            "clientMessageId must be 1 to 128 characters of A-Z a-z 0-9 . _ : -",
        ),
        (PostMessageRequest, {"text": "hi", "colour": "red"}, "colour is not a known field"),
        (PostMessageRequest, {"text": "hi", "cards": [{"content": {}}]}, "cards.0.contentType is required"),
        (PostMessageRequest, [], "the request body must be an object, not a list"),
        (
            OpenConversationRequest,
            {"customer": {"email": "ada"}},
            "customer.email must be an email address (name@domain, no spaces)",
        ),
        (
            OpenConversationRequest,
            {"customer": {"language": "english"}},
            "customer.language must be a language code such as en or en-US",
        ),
        (
            OpenConversationRequest,
            {"customer": {"properties": {"1st": "x"}}},
            "customer.properties.[key] must start with a letter and be at most 64 characters of A-Z a-z 0-9 _ . -",
        ),
        (OpenConversationRequest, {"customer": []}, "customer must be an object, not a list"),
        (OpenConversationRequest, {"routing": {"id": "q1"}}, "routing.type is required"),
        (OpenConversationRequest, {"history": [{"authorType": "bot"}] * 201}, "history must have at most 200 items"),
        (
            AttachmentUploadRequest,
            {"fileName": "a/b", "contentType": "text/plain", "size": 1},
            "fileName must be a file name without slashes, backslashes or control characters",
        ),
        (
            AttachmentUploadRequest,
            {"fileName": "a", "contentType": "text", "size": 1},
            "contentType must be a media type such as image/png",
        ),
        (AttachmentUploadRequest, {"fileName": "a", "contentType": "text/plain", "size": 0}, "size must be at least 1"),
        (
            AttachmentUploadRequest,
            {"fileName": "a", "contentType": "text/plain", "size": 1.5},
            "size must be a whole number, not a number with a fraction",
        ),
    ],
)
def test_each_refusal_says_the_field_and_its_rule_in_words(model: type[Any], body: Any, summary: str) -> None:
    """What a person reads in the 400: the field and the rule, never the validator's wording or regex."""
    with pytest.raises(RequestInvalid) as raised:
        validate(model, body)
    assert raised.value.summary == summary
    assert not any(word in raised.value.message for word in ("Expected", "`", "regex", "\\"))


def _patterns(info: Any, seen: set[int]) -> set[str]:
    """Every string pattern in a msgspec type, however deep."""
    if id(info) in seen:
        return set()
    seen.add(id(info))
    if isinstance(info, msgspec.inspect.StrType):
        return {info.pattern} if info.pattern else set()
    found: set[str] = set()
    if isinstance(info, msgspec.inspect.StructType):
        for f in info.fields:
            found |= _patterns(f.type, seen)
    for name in ("type", "item_type", "key_type", "value_type"):
        if hasattr(info, name):
            found |= _patterns(getattr(info, name), seen)
    for inner in getattr(info, "types", ()):
        found |= _patterns(inner, seen)
    return found


def test_every_pattern_of_every_request_model_has_words() -> None:
    models = (OpenConversationRequest, PostMessageRequest, AttachmentUploadRequest, TypingRequest)
    used = set().union(*(_patterns(msgspec.inspect.type_info(m), set()) for m in models))
    assert used, "no patterns found: the walk is broken"
    assert used <= set(PATTERN_WORDS), f"patterns without words: {used - set(PATTERN_WORDS)}"


def test_bodies_of_a_new_model_read_on_several_threads_at_once_do_not_crash() -> None:
    """The local stack and the tests serve requests on threads. msgspec builds a model's decoding info on the model's
    first use; 0.22 crashed the process (segfault) when threads did it at once (about 9 runs in 10 here). Run apart,
    so a crash fails this test rather than the whole session; new models each round, for new first uses."""
    script = textwrap.dedent(
        """
        import sys, threading
        from casebridge.business_api import models
        sys.setswitchinterval(1e-6)
        for _ in range(20):
            class Entry(models._Strict, frozen=True):
                text: str
                author_type: str = "bot"
            class Body(models._Strict, frozen=True):
                name: str | None = None
                history: list[Entry] = []
            body = {"name": "Ada", "history": [{"text": "hi", "authorType": "bot"}]}
            start = threading.Barrier(8)
            def read() -> None:
                start.wait()
                assert models.validate(Body, body).history[0].text == "hi"
            threads = [threading.Thread(target=read) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        """
    )
    layer = str(ROOT / "layers" / "common")
    run = subprocess.run(
        [sys.executable, "-c", script], check=False, env={"PYTHONPATH": layer}, capture_output=True, timeout=60
    )
    assert run.returncode == 0, run.stderr.decode()[-2000:]
