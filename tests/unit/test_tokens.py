"""casebridge.contact_center.tokens: 8x8 access tokens cached in memory and shared through the table."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import pytest
import responses

from casebridge.contact_center.chat_api_v2 import token_fetcher
from casebridge.contact_center.token_store import TableTokenCache
from casebridge.contact_center.tokens import AccessToken, TokenProvider
from casebridge.errors import ContactCenterError

BASE = "https://api.8x8.test"


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class CountingFetch:
    """8x8's token endpoint as the provider calls it: counts its calls, can be slow."""

    clock: Callable[[], float] = time.time
    lifetime_s: int = 3600
    delay_s: float = 0.0
    calls: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self) -> AccessToken:
        with self._lock:
            self.calls += 1
            n = self.calls
        if self.delay_s:
            time.sleep(self.delay_s)
        return AccessToken(f"token-{n}", int(self.clock() * 1000) + self.lifetime_s * 1000)


class MemoryTokenStore:
    """An in-memory TokenCache with the same atomic lease semantics as the table."""

    def __init__(self) -> None:
        self.item: dict[str, Any] | None = None
        self.lock = threading.Lock()
        self.dropped: list[str] = []

    def get_token(self, tenant_id: str) -> dict[str, Any] | None:
        with self.lock:
            return dict(self.item) if self.item else None

    def lease_token_refresh(self, tenant_id: str, lease_ms: int) -> bool:
        now = int(time.time() * 1000)
        with self.lock:
            lease = (self.item or {}).get("leaseUntil", 0)
            if lease >= now:
                return False
            self.item = {**(self.item or {}), "leaseUntil": now + lease_ms}
            return True

    def put_token(
        self, tenant_id: str, access_token: str, expires_at_ms: int, refresh_at_ms: int | None = None
    ) -> None:
        with self.lock:
            self.item = {
                "accessToken": access_token,
                "tokenExpiresAt": expires_at_ms,
                "tokenRefreshAt": refresh_at_ms or 0,
                "leaseUntil": 0,
            }

    def drop_token(self, tenant_id: str, access_token: str) -> None:
        with self.lock:
            if self.item and self.item.get("accessToken") == access_token:
                self.item = None
                self.dropped.append(access_token)


def test_memory_cache_fetches_once() -> None:
    fetch = CountingFetch()
    provider = TokenProvider("t1", fetch)
    assert [provider.get() for _ in range(5)] == ["token-1"] * 5
    assert fetch.calls == 1


def test_twenty_threads_one_provider_fetch_once() -> None:
    fetch = CountingFetch(delay_s=0.05)
    provider = TokenProvider("t1", fetch, MemoryTokenStore())
    results: list[str] = []
    barrier = threading.Barrier(20)

    def worker() -> None:
        barrier.wait()
        results.append(provider.get())

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == ["token-1"] * 20
    assert fetch.calls == 1


def test_twenty_cold_providers_sharing_one_store_fetch_once() -> None:
    fetch = CountingFetch(delay_s=0.1)
    store = MemoryTokenStore()
    providers = [TokenProvider("t1", fetch, store, wait_for_peer_s=3.0) for _ in range(20)]
    results: list[str] = []
    barrier = threading.Barrier(20)

    def worker(p: TokenProvider) -> None:
        barrier.wait()
        results.append(p.get())

    threads = [threading.Thread(target=worker, args=(p,)) for p in providers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == ["token-1"] * 20
    assert fetch.calls == 1


def test_cold_providers_share_the_token_through_the_table(cases_table: str) -> None:
    fetch = CountingFetch()
    store = TableTokenCache(cases_table)
    first = TokenProvider("t1", fetch, store)
    assert first.get() == "token-1"
    for _ in range(3):
        assert TokenProvider("t1", fetch, TableTokenCache(cases_table)).get() == "token-1"
    assert fetch.calls == 1
    assert store.get_token("t1")["accessToken"] == "token-1"  # type: ignore[index]


def test_refresh_before_expiry() -> None:
    clock = Clock()
    fetch = CountingFetch(clock=clock, lifetime_s=300)
    provider = TokenProvider("t1", fetch, refresh_margin_ms=120_000, clock=clock)
    assert provider.get() == "token-1"
    clock.now += 179  # 121 s left: still fresh
    assert provider.get() == "token-1"
    clock.now += 2  # 119 s left: inside the margin, refreshed before it expires
    assert provider.get() == "token-2"
    assert fetch.calls == 2


def test_stale_shared_token_is_not_used() -> None:
    clock = Clock()
    store = MemoryTokenStore()
    store.put_token("t1", "old", int(clock() * 1000) + 60_000)  # expires inside the margin
    fetch = CountingFetch(clock=clock)
    assert TokenProvider("t1", fetch, store, clock=clock).get() == "token-1"
    assert store.item is not None and store.item["accessToken"] == "token-1"


def test_invalidate_forgets_the_token_here_and_in_the_shared_store() -> None:
    fetch = CountingFetch()
    store = MemoryTokenStore()
    provider = TokenProvider("t1", fetch, store)
    assert provider.get() == "token-1"
    provider.invalidate("token-1")
    assert store.dropped == ["token-1"]
    assert provider.get() == "token-2"
    assert fetch.calls == 2


def test_invalidate_of_an_already_replaced_token_keeps_the_new_one() -> None:
    fetch = CountingFetch()
    store = MemoryTokenStore()
    provider = TokenProvider("t1", fetch, store)
    provider.get()
    provider.invalidate("token-1")
    provider.get()  # token-2
    provider.invalidate("token-1")  # a late 401 for the old token
    assert provider.get() == "token-2"
    assert store.item is not None and store.item["accessToken"] == "token-2"
    assert fetch.calls == 2


def test_drop_token_in_the_table_is_conditional(cases_table: str) -> None:
    store = TableTokenCache(cases_table)
    store.put_token("t1", "current", int(time.time() * 1000) + 3_600_000)
    store.drop_token("t1", "stale")
    assert store.get_token("t1")["accessToken"] == "current"  # type: ignore[index]
    store.drop_token("t1", "current")
    assert store.get_token("t1") is None


def test_table_lease_has_one_holder(cases_table: str) -> None:
    store = TableTokenCache(cases_table)
    assert store.lease_token_refresh("t1", 10_000) is True
    assert store.lease_token_refresh("t1", 10_000) is False
    store.put_token("t1", "tok", int(time.time() * 1000) + 3_600_000)  # writing the token ends the lease
    assert store.lease_token_refresh("t1", 10_000) is True


# ---- the OAuth call ------------------------------------------------------------------------------
@responses.activate
def test_token_fetcher_parses_expires_in_sent_as_a_string() -> None:
    route = responses.post(f"{BASE}/oauth/v2/token", json={"access_token": "abc", "expires_in": "3600"})
    clock = Clock()
    token = token_fetcher(BASE, lambda: ("key-1", "secret-1"), clock=clock)()
    assert token == AccessToken("abc", int(clock() * 1000) + 3_600_000)
    sent = route.calls[0].request
    assert sent.headers["Authorization"].startswith("Basic ")
    assert parse_qs(sent.body) == {"grant_type": ["client_credentials"]}


@responses.activate
def test_token_fetcher_accepts_expires_in_as_a_number() -> None:
    responses.post(f"{BASE}/oauth/v2/token", json={"access_token": "abc", "expires_in": 1800})
    clock = Clock()
    assert token_fetcher(BASE, lambda: ("k", "s"), clock=clock)().expires_at_ms == int(clock() * 1000) + 1_800_000


@pytest.mark.parametrize(
    "answer", [{"expires_in": "3600"}, {"access_token": "abc", "expires_in": "soon"}, ["not", "an", "object"]]
)
@responses.activate
def test_token_fetcher_refuses_answers_it_does_not_understand(answer: Any) -> None:
    responses.post(f"{BASE}/oauth/v2/token", json=answer)
    with pytest.raises(ContactCenterError, match="not understood"):
        token_fetcher(BASE, lambda: ("k", "s"))()


@responses.activate
def test_token_fetcher_maps_refused_credentials() -> None:
    responses.post(f"{BASE}/oauth/v2/token", status=401, json={"message": "bad credentials"})
    with pytest.raises(ContactCenterError) as raised:
        token_fetcher(BASE, lambda: ("k", "s"))()
    assert raised.value.upstream_status == 401
