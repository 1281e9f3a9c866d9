"""Verify 8x8's `x-8x8-signature`: a JWS (RS256) with detached, unencoded payload (RFC 7515 + RFC 7797).

The signed payload is rebuilt from the headers and a CRC32 of the raw body bytes as received, so nothing
here ever re-serialises the body. Every check that needs no key runs before any key is fetched.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import threading
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import quote

import requests

from casebridge.clock import monotonic, wall_time
from casebridge.contact_center import http
from casebridge.errors import ContactCenterError, SigningKeyUnavailable, Unauthorized
from casebridge.observability import logger

if TYPE_CHECKING:
    from joserfc.jwk import RSAKey

SIGNATURE_HEADERS = (
    "x-8x8-signature",
    "x-8x8-event-id",
    "x-8x8-retry",
    "x-8x8-transmission-time",
    "x-8x8-tenant-id",
    "x-8x8-customer-id",
)
_COMPACT_DETACHED = re.compile(r"^([A-Za-z0-9_-]{1,1024})\.\.([A-Za-z0-9_-]{1,1400})$")
_KID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_ALLOWED_HEADER_PARAMS = {"alg", "b64", "crit", "kid", "typ"}
_UNKNOWN_KID_TTL_S = 60.0


@lru_cache(maxsize=1)
def _jose() -> Any:
    """joserfc (and cryptography under it) load on the first webhook, not when a function starts:
    only the webhook intake verifies signatures, and the import costs ~150 ms of cold start."""
    from joserfc import errors, jwk, jws  # noqa: PLC0415

    return SimpleNamespace(
        jws=jws, JoseError=errors.JoseError, RSAKey=jwk.RSAKey, registry=jws.JWSRegistry(algorithms=["RS256"])
    )


@dataclass(frozen=True)
class VerifiedDelivery:
    tenant_id: str
    event_id: str
    customer_id: str
    retry: int
    transmission_time: int
    kid: str


def _b64url_json(segment: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def signing_payload(body: bytes, customer_id: str, event_id: str, retry: int, tenant_id: str, tt: int) -> bytes:
    """The exact bytes 8x8 signs: compact JSON, keys in this order, CRC32 over the raw body."""
    checksum = zlib.crc32(body) & 0xFFFFFFFF
    return json.dumps(
        {"checksum": checksum, "cid": customer_id, "eid": event_id, "retry": retry, "tid": tenant_id, "tt": tt},
        separators=(",", ":"),
    ).encode()


MAX_UNKNOWN_KIDS = 256
FETCH_BUDGET = 10  # key fetches per FETCH_WINDOW_S for kids never seen, whatever the source: bounded calls to 8x8
FETCH_PER_SOURCE = 2  # ... of which one source may spend at most this many
# Fetches per window kept for sources that delivered a verified event before (8x8's own addresses): unsigned traffic
# cannot spend them, so a key rotation gets its new kid fetched during a flood of made-up kids.
TRUSTED_FETCH_BUDGET = 5
MAX_TRUSTED_SOURCES = 64
MAX_SOURCES = 4096  # sources counted per window (least recent forgotten)
FETCH_WINDOW_S = 60.0
FAILED_KID_TTL_S = 5.0  # a key endpoint failure is remembered this long per kid (docs/guarantees.md says so)
# Every signature failure gets this one answer: the reason (tenant, kid, time, signature) goes to the log only,
# so an unauthenticated caller learns nothing about its guesses.
REFUSED = "the webhook signature does not verify"


class KeyStore(Protocol):
    """Keys that verified a signature, shared by every container (the cases table)."""

    def signing_key(self, kid: str) -> Mapping[str, Any] | None: ...

    def put_signing_key(self, kid: str, jwk: Mapping[str, Any]) -> None: ...

    def trusted_sources(self) -> list[str]: ...

    def put_trusted_source(self, source: str) -> None: ...


class JwkCache:
    """Public keys by kid: kept for the container's life (a kid never changes its key), and in the table once a
    signature verified with them, so a new container has 8x8's keys without asking 8x8.

    The webhook is public, so anyone can send made-up kids. A kid neither cached nor stored costs a fetch from 8x8's
    key endpoint: at most FETCH_BUDGET per window for the container and FETCH_PER_SOURCE per source (past them,
    503 so that 8x8 retries later), plus TRUSTED_FETCH_BUDGET that only sources which delivered a verified event
    may spend; those sources are shared through the table, so a new container knows them. Unknown kids are
    remembered in a bounded LRU, and a key endpoint failure (429/5xx) FAILED_KID_TTL_S per kid. Cached and stored
    keys are always served, whatever the budgets."""

    def __init__(
        self,
        fetch: Callable[[str], Mapping[str, Any] | None],
        clock: Callable[[], float] = monotonic,
        *,
        fetch_budget: int = FETCH_BUDGET,
        per_source: int = FETCH_PER_SOURCE,
        trusted_budget: int = TRUSTED_FETCH_BUDGET,
        window_s: float = FETCH_WINDOW_S,
        max_unknown: int = MAX_UNKNOWN_KIDS,
        store: KeyStore | None = None,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._store = store
        self._keys: dict[str, RSAKey] = {}
        self._fetched: dict[str, Mapping[str, Any]] = {}  # fetched from 8x8, not yet stored (no signature yet)
        self._unknown: OrderedDict[str, float] = OrderedDict()
        self._failed: OrderedDict[str, float] = OrderedDict()
        self._recent_fetches: deque[float] = deque()
        self._trusted_fetches: deque[float] = deque()
        self._by_source: OrderedDict[str, deque[float]] = OrderedDict()
        self._trusted_sources: OrderedDict[str, None] = OrderedDict()
        self._shared_sources_read = False
        self._budget = fetch_budget
        self._per_source = per_source
        self._trusted_budget = trusted_budget
        self._window_s = window_s
        self._max_unknown = max_unknown
        self._lock = threading.Lock()
        self.fetches = 0

    def _remembered(self, table: OrderedDict[str, float], kid: str) -> bool:
        until = table.get(kid)
        if until is None:
            return False
        if self._clock() < until:
            return True
        del table[kid]
        return False

    def _remember(self, table: OrderedDict[str, float], kid: str, ttl_s: float) -> None:
        table[kid] = self._clock() + ttl_s
        table.move_to_end(kid)
        while len(table) > self._max_unknown:
            table.popitem(last=False)

    def _within(self, spent: deque[float], limit: int, now: float) -> bool:
        while spent and spent[0] <= now - self._window_s:
            spent.popleft()
        return len(spent) < limit

    def _read_shared_sources(self) -> None:
        """Once per container: the sources other containers saw verified, so a brand-new container keeps the trusted
        budget for 8x8 from its first request (a flood of made-up kids from many addresses cannot starve a new kid)."""
        if self._shared_sources_read or self._store is None:
            return
        self._shared_sources_read = True
        try:
            shared = self._store.trusted_sources()
        except Exception:  # a cache: without it, sources earn trust in this container as before
            logger.exception("trusted webhook sources unreadable")
            return
        for known in shared[-MAX_TRUSTED_SOURCES:]:
            self._trusted_sources.setdefault(known, None)

    def _spend_fetch(self, source: str | None) -> None:
        now = self._clock()
        if source is not None and source not in self._trusted_sources:
            self._read_shared_sources()
        if source in self._trusted_sources and self._within(self._trusted_fetches, self._trusted_budget, now):
            self._trusted_fetches.append(now)
            return
        per_source: deque[float] = deque()
        if source is not None:  # None: no address known (not through API Gateway), the container's budget only
            per_source = self._by_source.setdefault(source, per_source)
            self._by_source.move_to_end(source)
            while len(self._by_source) > MAX_SOURCES:
                self._by_source.popitem(last=False)
        limit = self._per_source if source is not None else self._budget
        if not self._within(self._recent_fetches, self._budget, now) or not self._within(per_source, limit, now):
            raise SigningKeyUnavailable("too many signing key look-ups; retry shortly", retry_after=int(self._window_s))
        self._recent_fetches.append(now)
        per_source.append(now)

    def _import(self, kid: str, jwk: Mapping[str, Any]) -> RSAKey:
        try:
            key = cast("RSAKey", _jose().RSAKey.import_key(dict(jwk)))
        except (_jose().JoseError, ValueError, TypeError) as error:
            raise SigningKeyUnavailable("8x8's key endpoint sent a key that is not an RSA JWK") from error
        self._keys[kid] = key
        return key

    def _stored(self, kid: str) -> RSAKey | None:
        if self._store is None:
            return None
        try:
            jwk = self._store.signing_key(kid)
        except Exception:  # the table is a cache of 8x8's keys: without it, 8x8 is asked
            logger.exception("stored signing keys unreadable; asking 8x8")
            return None
        return self._import(kid, jwk) if jwk else None

    def get(self, kid: str, source: str | None = None) -> RSAKey | None:
        key = self._keys.get(kid)
        if key is not None:
            return key
        with self._lock:
            if kid in self._keys:
                return self._keys[kid]
            if self._remembered(self._unknown, kid):
                return None
            stored = self._stored(kid)
            if stored is not None:
                return stored
            if self._remembered(self._failed, kid):
                left = self._failed[kid] - self._clock()
                raise SigningKeyUnavailable(
                    "8x8's key endpoint failed moments ago", retry_after=max(1, math.ceil(left))
                )
            self._spend_fetch(source)
            self.fetches += 1
            try:
                jwk = self._fetch(kid)
            except SigningKeyUnavailable:
                self._remember(self._failed, kid, FAILED_KID_TTL_S)
                raise
            if jwk is None:
                self._remember(self._unknown, kid, _UNKNOWN_KID_TTL_S)
                return None
            key = self._import(kid, jwk)
            self._fetched[kid] = jwk
            return key

    def vouch(self, kid: str, source: str | None) -> None:
        """A signature verified with `kid`'s key, from `source`: the key goes to the table (once), the source is
        one of 8x8's."""
        with self._lock:
            new_source = bool(source) and source not in self._trusted_sources
            if source:
                self._trusted_sources[source] = None
                self._trusted_sources.move_to_end(source)
                while len(self._trusted_sources) > MAX_TRUSTED_SOURCES:
                    self._trusted_sources.popitem(last=False)
            jwk = self._fetched.pop(kid, None)
        if self._store is None:
            return
        try:
            if jwk is not None:
                self._store.put_signing_key(kid, jwk)
            if new_source and source:  # once per container and address: 8x8 sends from a handful
                self._store.put_trusted_source(source)
        except Exception:  # only a cache for other containers: they ask 8x8 instead
            logger.exception("verified signing key or source not stored")


def jwk_url_template(api: str, base_url: str, region: str) -> str:
    """Where each 8x8 API publishes its webhook keys ({kid} is filled in). The Gateway's own path, not the
    v2 one that 8x8's code samples on the Gateway page still show (GATEWAY.md trap T6)."""
    base = base_url.rstrip("/")
    if api == "chat-api-v2":
        return f"{base}/vcc/{region}/chat/v2/jwk/{{kid}}/public"
    return f"{base}/chat-gateway/v1/jwk/{{kid}}/public"


def http_jwk_fetcher(
    url_template: str, *, timeout: float = 3.0, session: requests.Session | None = None
) -> Callable[[str], Mapping[str, Any] | None]:
    own_session = session or http.new_session()

    def fetch(kid: str) -> Mapping[str, Any] | None:
        url = url_template.format(kid=quote(kid, safe=""))  # the kid comes from an unauthenticated header
        try:
            answer = http.request(own_session, "GET", url, "jwk", timeout)
        except ContactCenterError as error:
            if error.upstream_status == 404:
                return None
            raise SigningKeyUnavailable(f"8x8's key endpoint failed for kid {kid}", retry_after=5) from error
        try:
            body: Any = answer.json()
            if isinstance(body, str):  # both contracts type this answer as a JSON string (trap T10)
                body = json.loads(body)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise SigningKeyUnavailable(f"8x8's key endpoint sent no JWK for kid {kid}")
        return body

    return fetch


def _refused(reason: str) -> Unauthorized:
    """The one 401 for every signature failure; the reason is logged, never answered."""
    logger.warning("webhook signature refused", extra={"reason": reason})
    return Unauthorized(REFUSED)


class WebhookVerifier:
    def __init__(
        self, tenant_id: str, keys: JwkCache, *, tolerance_s: int = 300, clock: Callable[[], float] = wall_time
    ) -> None:
        self.tenant_id = tenant_id
        self.keys = keys
        self.tolerance_ms = tolerance_s * 1000
        self.clock = clock

    def verify(self, headers: Mapping[str, str], body: bytes, source: str | None = None) -> VerifiedDelivery:
        """Headers must already be lower-cased. Raises Unauthorized, or SigningKeyUnavailable (retryable)."""
        missing = [name for name in SIGNATURE_HEADERS if not headers.get(name)]
        if missing:
            raise _refused(f"missing webhook header(s): {', '.join(missing)}")
        event_id, tenant_id, customer_id = (
            headers["x-8x8-event-id"],
            headers["x-8x8-tenant-id"],
            headers["x-8x8-customer-id"],
        )
        for name, value in (
            ("x-8x8-event-id", event_id),
            ("x-8x8-tenant-id", tenant_id),
            ("x-8x8-customer-id", customer_id),
        ):
            if not _ID.match(value):
                raise _refused(f"{name} is not a valid id")
        try:
            retry, tt = int(headers["x-8x8-retry"]), int(headers["x-8x8-transmission-time"])
        except ValueError:
            raise _refused("x-8x8-retry and x-8x8-transmission-time must be integers") from None
        if tenant_id != self.tenant_id:
            raise _refused("webhook is for another tenant")
        if abs(self.clock() * 1000 - tt) > self.tolerance_ms:
            raise _refused("x-8x8-transmission-time is outside the accepted window")
        kid = self._check_protected_header(headers["x-8x8-signature"])
        key = self.keys.get(kid, source)
        if key is None:
            raise _refused("unknown signing key")
        payload = signing_payload(body, customer_id, event_id, retry, tenant_id, tt)
        try:
            jose = _jose()
            jose.jws.deserialize_compact(headers["x-8x8-signature"], key, payload=payload, registry=jose.registry)
        except (_jose().JoseError, ValueError) as error:
            raise _refused(f"signature does not verify ({type(error).__name__}, event {event_id})") from None
        self.keys.vouch(kid, source)
        return VerifiedDelivery(tenant_id, event_id, customer_id, retry, tt, kid)

    @staticmethod
    def _check_protected_header(signature: str) -> str:
        match = _COMPACT_DETACHED.match(signature)
        if not match:
            raise _refused("x-8x8-signature is not a compact JWS with detached payload")
        try:
            header = _b64url_json(match.group(1))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise _refused("x-8x8-signature has an unreadable protected header") from None
        if not isinstance(header, dict):
            raise _refused("x-8x8-signature has an unreadable protected header")
        if set(header) - _ALLOWED_HEADER_PARAMS:
            raise _refused("x-8x8-signature has unexpected header parameters")
        if header.get("alg") != "RS256":
            raise _refused("x-8x8-signature must use RS256")
        if header.get("b64") is not False or header.get("crit") != ["b64"]:
            raise _refused("x-8x8-signature must be an unencoded payload JWS (b64 false, crit [b64])")
        kid = header.get("kid")
        if not isinstance(kid, str) or not _KID.match(kid):
            raise _refused("x-8x8-signature has a missing or malformed kid")
        return kid
