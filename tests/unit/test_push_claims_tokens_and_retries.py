"""The channel push's own rules, on moto: a connection gets each timeline entry once and in order even when pushes
race for it, a failed post gives its claim back, channel tokens are bound to their case and expire, and the webhook
retry delays follow backoff with jitter or the channel's Retry-After."""

from __future__ import annotations

import random
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from casebridge.errors import Unauthorized
from casebridge.push import tokens
from casebridge.push.connections import ConnectionGone
from casebridge.push.fanout import fan_out, push_timeline
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
