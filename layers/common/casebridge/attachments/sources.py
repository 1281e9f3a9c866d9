"""Where the copier may fetch an agent's file from: only 8x8's file hosts, never anything else the webhook names.

The URL comes from a webhook body: whoever can get a body signed (or replays one) chooses it. So a fetch goes
out only when the URL is https, its host is one of ATTACHMENT_SOURCE_HOSTS (8x8's documented hosts by default,
and the configured 8x8 base URL's host) and every address the host resolves to is a public one (no private,
loopback, link-local, reserved or multicast address). Redirects are followed by hand, each hop checked the same
way. DNS may answer otherwise when the connection is made than it did for the check, so every connection's socket
is checked again the moment it connects, before TLS and before any byte of the request: whatever the answer turns
out to be (HTTP/1.0, `Connection: close`), nothing is sent to an address casebridge does not fetch from. No proxy
(it would hide the address connected to) and no credentials go with it.

The local stack and the emulator serve files over http on loopback: ATTACHMENT_SOURCES_LOOPBACK=true (set by the
local stack, never the default) allows http to a loopback address of an allowed host, and nothing else.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import PoolManager

from casebridge.observability import MetricUnit, logger, metrics

MAX_REDIRECTS = 3
# GATEWAY.md names one 8x8 host (api.8x8.com); its pre-signed URL example host is a placeholder.
DEFAULT_SOURCE_HOSTS = "api.8x8.com"

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]


class SourceRefused(Exception):
    """The URL is not one casebridge fetches from (the reason is for the log)."""


def resolve(host: str, port: int) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


@dataclass(frozen=True)
class SourcePolicy:
    hosts: frozenset[str]  # exact names, or "*.suffix"
    loopback_http: bool = False
    resolver: Resolver | None = None  # None: the system's resolver (`resolve`)

    @classmethod
    def from_settings(cls, source_hosts: str, base_url: str, loopback: bool) -> SourcePolicy:
        hosts = {h.strip().lower().rstrip(".") for h in source_hosts.split(",") if h.strip()}
        base_host = (urlsplit(base_url).hostname or "").lower()
        return cls(frozenset(hosts | ({base_host} if base_host else set())), loopback)

    def _host_allowed(self, host: str) -> bool:
        return any(host == h or (h.startswith("*.") and host.endswith(h[1:])) for h in self.hosts)

    def _address_allowed(self, address: IpAddress) -> bool:
        address = _unmapped(address)
        if self.loopback_http and address.is_loopback:
            return True
        return address.is_global and not address.is_multicast

    def check(self, url: str) -> None:
        """Raises SourceRefused unless `url` may be fetched (scheme, host, every resolved address)."""
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower().rstrip(".")
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as error:
            raise SourceRefused("not a URL") from error
        if not host or not self._host_allowed(host):
            raise SourceRefused(f"host {host or '(none)'} is not one of 8x8's file hosts")
        try:
            found = (self.resolver or resolve)(host, port)
            addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
        except (OSError, ValueError) as error:
            raise SourceRefused(f"host {host} does not resolve") from error
        if not addresses or not all(self._address_allowed(a) for a in addresses):
            raise SourceRefused(f"host {host} resolves to an address casebridge does not fetch from")
        if parts.scheme == "https":
            return
        if parts.scheme == "http" and self.loopback_http and all(a.is_loopback for a in addresses):
            return
        raise SourceRefused(f"{parts.scheme or 'no'} scheme: only https")

    def check_connected(self, address: str, *, cleartext: bool) -> None:
        """Raises SourceRefused unless a connection that reached `address` may be used (checked before anything
        is sent on it). Cleartext only ever to loopback, as in `check`."""
        try:
            peer = _unmapped(ipaddress.ip_address(address.split("%", 1)[0]))
        except ValueError as error:
            raise SourceRefused(f"connected to {address!r}, not an IP address") from error
        if not self._address_allowed(peer) or (cleartext and not (self.loopback_http and peer.is_loopback)):
            raise SourceRefused("connected to an address casebridge does not fetch from")


def _unmapped(address: IpAddress) -> IpAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


# ---- connections checked when they connect ------------------------------------------------------------------
# urllib3 makes every socket in a connection's _new_conn (a first connect, a reconnect); the check runs there,
# on the address the socket reached, so no answer's shape or pooling can skip it.


def _checked(sock: socket.socket, policy: SourcePolicy, *, cleartext: bool) -> socket.socket:
    try:
        policy.check_connected(str(sock.getpeername()[0]), cleartext=cleartext)
    except BaseException:
        sock.close()
        raise
    return sock


class _CheckedHTTPConnection(HTTPConnection):
    def __init__(self, *args: Any, source_policy: SourcePolicy, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.source_policy = source_policy

    def _new_conn(self) -> socket.socket:
        return _checked(super()._new_conn(), self.source_policy, cleartext=True)


class _CheckedHTTPSConnection(HTTPSConnection):
    def __init__(self, *args: Any, source_policy: SourcePolicy, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.source_policy = source_policy

    def _new_conn(self) -> socket.socket:
        return _checked(super()._new_conn(), self.source_policy, cleartext=False)


class _CheckedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _CheckedHTTPConnection


class _CheckedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


class _CheckedPoolManager(PoolManager):
    """Pools whose connections check their peer against `policy` (handed to each connection it makes)."""

    def __init__(self, policy: SourcePolicy, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.policy = policy
        self.pool_classes_by_scheme = {"http": _CheckedHTTPPool, "https": _CheckedHTTPSPool}

    def _new_pool(
        self, scheme: str, host: str, port: int, request_context: dict[str, Any] | None = None
    ) -> HTTPConnectionPool:
        context = dict(self.connection_pool_kw if request_context is None else request_context)
        context["source_policy"] = self.policy  # not part of the pool's key: each manager has one policy
        return super()._new_pool(scheme, host, port, context)


class _CheckedAdapter(HTTPAdapter):
    def __init__(self, policy: SourcePolicy) -> None:
        self.policy = policy  # before super().__init__, which makes the pool manager
        super().__init__()

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        self._pool_connections, self._pool_maxsize, self._pool_block = connections, maxsize, block
        self.poolmanager = _CheckedPoolManager(
            self.policy, num_pools=connections, maxsize=maxsize, block=block, **pool_kwargs
        )

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        # Through a proxy the socket reaches the proxy, never the file host: nothing could be checked.
        raise SourceRefused("a proxy is configured: the file host's address cannot be checked through it")


def checked_get(policy: SourcePolicy, url: str, timeout: float) -> requests.Response:
    """One GET, streamed, no redirect followed, on connections whose peer `policy` checks as they connect.
    Raises SourceRefused, or requests' own errors."""
    with requests.Session() as session:  # closing it leaves a streamed answer readable (as requests.get does)
        adapter = _CheckedAdapter(policy)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session.get(url, stream=True, allow_redirects=False, timeout=(min(timeout, 3.05), max(timeout, 30.0)))


def fetch(policy: SourcePolicy, url: str, timeout: float) -> requests.Response:
    """GET `url` streamed, following at most MAX_REDIRECTS redirects, every hop checked. Raises SourceRefused, or
    requests' own errors. The answer may be any status: the caller decides."""
    for _ in range(MAX_REDIRECTS + 1):
        try:
            policy.check(url)  # before connecting: the reason is clearer, and nothing is connected to
            response = checked_get(policy, url, timeout)
        except SourceRefused:
            metrics.add_metric(name="AttachmentSourcesRefused", unit=MetricUnit.Count, value=1)
            raise
        location = response.headers.get("Location")
        if not response.is_redirect or not location:
            return response
        response.close()
        url = urljoin(url, location)
        logger.info("agent attachment URL redirects; checking the next hop")
    raise SourceRefused(f"more than {MAX_REDIRECTS} redirects")
