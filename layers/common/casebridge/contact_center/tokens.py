"""8x8 OAuth tokens, cached in memory and shared between containers through the table.

A fleet of cold Lambdas asks the table first; one of them takes a short lease and fetches the token,
the others wait for it. So 8x8 sees one token request per token lifetime, not one per container.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from casebridge.clock import monotonic, sleep, wall_time
from casebridge.observability import logger


@dataclass(frozen=True)
class AccessToken:
    value: str
    expires_at_ms: int
    refresh_at_ms: int = 0  # when to fetch the next one (0: the refresh margin before it expires)


class TokenCache(Protocol):
    """The shared part (CaseStore implements it)."""

    def get_token(self, tenant_id: str) -> dict[str, object] | None: ...
    def lease_token_refresh(self, tenant_id: str, lease_ms: int) -> bool: ...
    def put_token(
        self, tenant_id: str, access_token: str, expires_at_ms: int, refresh_at_ms: int | None = None
    ) -> None: ...
    def drop_token(self, tenant_id: str, access_token: str) -> None: ...


class TokenProvider:
    def __init__(
        self,
        tenant_id: str,
        fetch: Callable[[], AccessToken],
        shared: TokenCache | None = None,
        *,
        refresh_margin_ms: int = 120_000,
        lease_ms: int = 10_000,
        wait_for_peer_s: float = 3.0,
        clock: Callable[[], float] = wall_time,
    ) -> None:
        self.tenant_id = tenant_id
        self._fetch = fetch
        self._shared = shared
        self._margin = refresh_margin_ms
        self._lease_ms = lease_ms
        self._wait_s = wait_for_peer_s
        self._clock = clock
        self._token: AccessToken | None = None
        self._lock = threading.Lock()

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _fresh(self, token: AccessToken | None) -> bool:
        if token is None:
            return False
        refresh_at = token.refresh_at_ms or token.expires_at_ms - self._margin
        return refresh_at > self._now_ms()

    def _with_refresh_point(self, token: AccessToken) -> AccessToken:
        """Refresh at the margin before expiry, or halfway through a lifetime shorter than twice the margin: a
        token of two minutes or less would otherwise be stale on arrival and fetched again on every call."""
        lifetime = token.expires_at_ms - self._now_ms()
        return AccessToken(token.value, token.expires_at_ms, token.expires_at_ms - min(self._margin, lifetime // 2))

    def _from_shared(self) -> AccessToken | None:
        assert self._shared is not None
        item = self._shared.get_token(self.tenant_id)
        if item and item.get("accessToken"):
            token = AccessToken(
                str(item["accessToken"]),
                int(str(item.get("tokenExpiresAt", 0))),
                int(str(item.get("tokenRefreshAt", 0))),
            )
            if self._fresh(token):
                return token
        return None

    def get(self) -> str:
        with self._lock:
            if not self._fresh(self._token):
                self._token = self._obtain()
            assert self._token is not None
            return self._token.value

    def _obtain(self) -> AccessToken:
        if self._shared is None:
            return self._with_refresh_point(self._fetch())
        token = self._from_shared()
        if token:
            return token
        if not self._shared.lease_token_refresh(self.tenant_id, self._lease_ms):
            deadline = monotonic() + self._wait_s
            while monotonic() < deadline:
                sleep(0.05)
                token = self._from_shared()
                if token:
                    return token
            logger.warning("token refresh by a peer container did not complete; fetching our own")
        else:
            # Won the lease: a peer may have stored a fresh token just before, so look once more.
            token = self._from_shared()
            if token:
                return token
        token = self._with_refresh_point(self._fetch())
        self._shared.put_token(self.tenant_id, token.value, token.expires_at_ms, token.refresh_at_ms)
        logger.info("fetched a new 8x8 access token", extra={"expiresAtMs": token.expires_at_ms})
        return token

    def invalidate(self, rejected: str) -> None:
        """8x8 refused this token: forget it here and in the table (unless a peer already replaced it)."""
        with self._lock:
            if self._token and self._token.value == rejected:
                self._token = None
        if self._shared is not None:
            self._shared.drop_token(self.tenant_id, rejected)
