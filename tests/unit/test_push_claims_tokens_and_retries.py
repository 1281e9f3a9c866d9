"""The channel push's own rules, on moto: a connection gets each timeline entry once and in order even when pushes
race for it, a failed post gives its claim back, a frame over API Gateway's 128 KB goes cut and marked instead of
holding up the connection, channel tokens are bound to their case and expire, and the webhook retry delays follow
backoff with jitter or the channel's Retry-After."""

from __future__ import annotations

import json
import random
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import jsonschema
import pytest
from botocore.exceptions import ClientError

from casebridge.business_api.views import event_json_schema
from casebridge.errors import Unauthorized
from casebridge.push import tokens
from casebridge.push.connections import ConnectionGone, Connections
from casebridge.push.fanout import fan_out, push_timeline
from casebridge.push.frames import MAX_FRAME_BYTES, fit_frame
from casebridge.push.socket import resume
from casebridge.push.webhook import RETRY_AFTER_CAP_SECONDS, backoff_seconds, retry_after_seconds
from casebridge.store import TimelineEntry
from tests.support.aws import aws_client

CASE_ID = "case-push-1"


def case_with_entries(services: Any, count: int) -> None:
    assert services.store.claim_opening(CASE_ID, 1000)
    for n in range(1, count + 1):
        case = services.store.get_case(CASE_ID)
        entry = TimelineEntry(f"e{n}", "AgentMessage", "conv-1", n, n, detail={"agentId": "a", "text": f"t{n}"})
        services.store.record_case_event(case, entry, None)


class Posts:
    """The @connections API as the push sees it: posts recorded; one may fail (`fail_at`), or all be gone."""

    def __init__(self, fail_at: int | None = None, gone: bool = False) -> None:
        self.sent: list[int] = []
        self.fail_at = fail_at
        self.gone = gone
        self.lock = threading.Lock()

    def post(self, connection_id: str, frame: dict[str, Any]) -> None:
        if self.gone:
            raise ConnectionGone(connection_id)
        if frame["sequence"] == self.fail_at:
            self.fail_at = None
            raise OSError("API Gateway did not answer")
        with self.lock:
            self.sent.append(int(frame["sequence"]))


def test_pushes_racing_for_one_connection_send_each_entry_once_in_order(services: Any) -> None:
    case_with_entries(services, 12)
    services.store.put_connection(CASE_ID, "conn-1", 0, 600)
    posts = Posts()
    barrier = threading.Barrier(4)

    def push() -> None:
        barrier.wait()
        connection = services.store.get_connection(CASE_ID, "conn-1")
        push_timeline(services, posts, connection)  # type: ignore[arg-type]

    threads = [threading.Thread(target=push) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(posts.sent) == list(range(1, 13))  # each once, none missing
    assert services.store.get_connection(CASE_ID, "conn-1").sent_seq == 12


def test_a_connection_resuming_from_a_cursor_gets_only_what_followed(services: Any) -> None:
    case_with_entries(services, 5)
    services.store.put_connection(CASE_ID, "conn-1", 3, 600)
    posts = Posts()
    assert push_timeline(services, posts, services.store.get_connection(CASE_ID, "conn-1")) == 2  # type: ignore[arg-type]
    assert posts.sent == [4, 5]


def test_a_failed_post_gives_its_claim_back_and_the_next_push_sends_the_rest(services: Any) -> None:
    case_with_entries(services, 4)
    services.store.put_connection(CASE_ID, "conn-1", 0, 600)
    posts = Posts(fail_at=3)
    with pytest.raises(OSError):
        push_timeline(services, posts, services.store.get_connection(CASE_ID, "conn-1"))  # type: ignore[arg-type]
    assert services.store.get_connection(CASE_ID, "conn-1").sent_seq == 2  # 1 and 2 went; 3 and 4 are not claimed
    push_timeline(services, posts, services.store.get_connection(CASE_ID, "conn-1"))  # type: ignore[arg-type]
    assert posts.sent == [1, 2, 3, 4]


def test_a_gone_connection_raises_so_the_fan_out_drops_it(services: Any) -> None:
    case_with_entries(services, 1)
    services.store.put_connection(CASE_ID, "conn-1", 0, 600)
    with pytest.raises(ConnectionGone):
        push_timeline(services, Posts(gone=True), services.store.get_connection(CASE_ID, "conn-1"))  # type: ignore[arg-type]
    services.store.drop_connection(CASE_ID, "conn-1")
    assert services.store.case_connections(CASE_ID) == []
    assert services.store.connection_case("conn-1") is None


class ApiGateway:
    """The @connections API as API Gateway answers it: a post over its 128 KB message limit is refused with 413
    PayloadTooLargeException (as the local stack's stand-in refuses it); the frames it took, in order."""

    LIMIT = 128 * 1024

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.frames: list[dict[str, Any]] = []

    def post_to_connection(self, ConnectionId: str, Data: bytes) -> None:  # noqa: N803 - boto3's names
        if len(Data) > self.LIMIT:
            answer: Any = {
                "Error": {"Code": "PayloadTooLargeException", "Message": "the frame is too large"},
                "ResponseMetadata": {"HTTPStatusCode": 413},
            }
            raise ClientError(answer, "PostToConnection")
        self.sizes.append(len(Data))
        self.frames.append(json.loads(Data))


def agent_says(services: Any, sequence: int, text: str) -> dict[str, Any]:
    """The agent's text recorded as the case's `sequence`th entry; its bus event's detail."""
    case = services.store.get_case(CASE_ID)
    entry = TimelineEntry(f"e{sequence}", "AgentMessage", "conv-1", sequence, sequence, {"agentId": "a", "text": text})
    services.store.record_case_event(case, entry, None)
    return {"caseId": CASE_ID, "eventId": entry.event_id, "type": entry.type, "sequence": sequence}


@pytest.mark.parametrize("long_text", ["a" * 300_000, "\U0001f600" * 100_000], ids=["ascii", "emoji"])
def test_an_agent_text_over_api_gateways_frame_limit_reaches_the_widget_cut_and_marked_and_the_next_event_too(
    services: Any, long_text: str
) -> None:
    """API Gateway refuses a post over 128 KB on every retry, and a connection's pushes go in order: such a frame
    held up the connection for good (the fan-out failed, EventBridge retried it, and every later event's push
    tried it first). It now goes cut to fit, marked as the timeline marks a cut text, with its sequence and cursor:
    the next event follows, and a resume from a cursor before it sends it again, cut the same way."""
    assert services.store.claim_opening(CASE_ID, 1000)
    agent_says(services, 1, "before")
    services.store.put_connection(CASE_ID, "conn-1", 1, 600)  # it had "before"
    api = ApiGateway()
    connections = Connections("", client=api)
    assert fan_out(services, connections, agent_says(services, 2, long_text)) == 1
    assert fan_out(services, connections, agent_says(services, 3, "after")) == 1
    cut, after = api.frames
    assert (cut["sequence"], after["sequence"], after["text"]) == (2, 3, "after")
    assert long_text.startswith(cut["text"]) and (cut["textTruncated"], cut["textLength"]) == (True, len(long_text))
    # Measured as sent, UTF-8 not escaped (an escaped emoji takes 12 bytes): the cut fills the frame to a character.
    assert MAX_FRAME_BYTES - 4 < api.sizes[0] <= MAX_FRAME_BYTES and len(cut["text"].encode()) > 126_000
    timeline = services.store.timeline_after(CASE_ID, 0, 10)
    assert cut["cursor"] == timeline[1].cursor and cut["eventId"] == "e2"
    for frame in api.frames:
        jsonschema.validate(frame, event_json_schema())

    api.frames.clear()
    assert resume(services, connections, "conn-1", {"after": timeline[0].cursor}) == {"sent": 2}
    assert [(f["sequence"], f["text"]) for f in api.frames] == [(2, cut["text"]), (3, "after")]
    assert api.frames[0]["textTruncated"] is True
    assert services.store.get_connection(CASE_ID, "conn-1").sent_seq == 3


def agent_frame(**content: Any) -> dict[str, Any]:
    common = {"eventId": "e1", "type": "AgentMessage", "caseId": CASE_ID, "conversationId": "conv-1"}
    return {**common, "occurredAt": 1, "receivedAt": 2, "agentId": "a", **content, "sequence": 1, "cursor": "c1"}


def test_cards_that_cannot_fit_a_frame_beside_no_text_are_dropped_and_the_text_kept_or_cut() -> None:
    cards = [{"contentType": "application/vnd.example", "content": {"body": "c" * 60_000}} for _ in range(3)]
    kept, data = fit_frame(agent_frame(text="see the cards", cards=cards))
    assert (kept["text"], kept["cardsDropped"], len(data) <= MAX_FRAME_BYTES) == ("see the cards", 3, True)
    assert "cards" not in kept and "textTruncated" not in kept
    cut, data = fit_frame(agent_frame(text="é" * 100_000, cards=cards))
    assert (cut["cardsDropped"], cut["textTruncated"], cut["textLength"]) == (3, True, 100_000)
    assert MAX_FRAME_BYTES - 100 < len(data) <= MAX_FRAME_BYTES
    small = [{"contentType": "application/vnd.example", "content": {"body": "c" * 1_000}}]
    cut, _ = fit_frame(agent_frame(text="x" * 200_000, cards=small))
    assert cut["cards"] == small and "cardsDropped" not in cut  # cards that fit stay; the text gives way
    for frame in (kept, cut):
        jsonschema.validate(frame, event_json_schema())


def test_a_frame_cut_by_the_timeline_keeps_8x8s_length_and_a_frame_that_fits_goes_as_it_is() -> None:
    recorded = agent_frame(text="a" * 390_000, textTruncated=True, textLength=500_000)
    cut, _ = fit_frame(recorded)
    assert (cut["textTruncated"], cut["textLength"]) == (True, 500_000)
    fitting = agent_frame(text="\U0001f600" * 31_000)  # 124,000 bytes as UTF-8; 372,000 escaped
    same, data = fit_frame(fitting)
    assert same is fitting and json.loads(data) == fitting and len(data) <= MAX_FRAME_BYTES


def test_attachments_that_cannot_fit_a_frame_are_left_to_the_timeline_and_named_in_omitted() -> None:
    """The parsers' bounds (50 attachments, file names of 1,024 characters) allow references over the limit."""
    attachments = [
        {"attachmentId": f"att-{n}", "fileName": "\U0001f4ce" * 1024, "type": "file", "status": "pending"}
        for n in range(50)
    ]
    fitted, data = fit_frame(agent_frame(text="a" * 300_000, attachments=attachments))
    assert fitted["omitted"] == ["attachments"] and "attachments" not in fitted and len(data) <= MAX_FRAME_BYTES
    assert (fitted["textTruncated"], fitted["textLength"]) == (True, 300_000)
    jsonschema.validate(fitted, event_json_schema())


@pytest.fixture
def token_settings(services: Any) -> Any:
    arn = aws_client("secretsmanager").create_secret(Name="channel-token-key", SecretString="k" * 64)["ARN"]
    return replace(services.settings, channel_token_secret_id=arn, channel_socket_url="wss://socket.example/v1")


def test_a_channel_token_names_its_case_and_nothing_else_passes(token_settings: Any) -> None:
    issued = tokens.issue(token_settings, CASE_ID)
    assert issued["url"] == f"wss://socket.example/v1?token={issued['token']}"
    assert tokens.verify(token_settings, issued["token"]) == CASE_ID
    expired = tokens.issue(token_settings, CASE_ID, now=1_000_000)["token"]
    header, _, signature = issued["token"].split(".")
    other_case = tokens.issue(token_settings, "case-2")["token"].split(".")[1]
    for refused in (expired, f"{header}.{other_case}.{signature}", "not-a-token", ""):
        with pytest.raises(Unauthorized):
            tokens.verify(token_settings, refused)


class Ceiling(random.Random):
    """Full jitter's draw at its top: the schedule's ceilings."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_webhook_retry_delays_are_jittered_backoff_or_the_channels_retry_after(services: Any) -> None:
    settings = replace(services.settings, retry_base_seconds=2.0, retry_cap_seconds=300.0)
    top = Ceiling()
    assert [backoff_seconds(settings, n, top) for n in range(1, 11)] == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    assert all(0 <= backoff_seconds(settings, n) <= 300 for n in range(1, 30))
    assert retry_after_seconds("7") == 7
    assert retry_after_seconds("999999") == RETRY_AFTER_CAP_SECONDS
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


class WatchedStore:
    """The store, noting whether the case's connections were asked for before the timeline read ends."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.connections_asked = threading.Event()
        self.asked_during_timeline_read: list[bool] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def case_connections(self, case_id: str) -> Any:
        self.connections_asked.set()
        return self._store.case_connections(case_id)

    def timeline_after(self, case_id: str, sequence: int, limit: int) -> Any:
        # A bound for a hang, not a measurement: one after the other, the connections are never asked meanwhile.
        self.asked_during_timeline_read.append(self.connections_asked.wait(5))
        return self._store.timeline_after(case_id, sequence, limit)


def test_the_fan_out_reads_the_connections_while_it_reads_the_event_s_entry(services: Any) -> None:
    """Two reads, one round trip: the case's connections are read beside the committed entry, not after it."""
    case_with_entries(services, 1)
    services.store.put_connection(CASE_ID, "conn-1", 0, 600)
    store = WatchedStore(services.store)
    posts = Posts()
    detail = {"caseId": CASE_ID, "eventId": "e1", "type": "AgentMessage", "sequence": 1}
    assert fan_out(replace(services, store=store), posts, detail) == 1  # type: ignore[arg-type]
    assert store.asked_during_timeline_read[0] is True
    assert posts.sent == [1]
