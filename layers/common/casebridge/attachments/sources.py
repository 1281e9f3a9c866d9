"""Where the copier may fetch an agent's file from: only 8x8's file hosts, never anything else the webhook names.

The URL comes from a webhook body: whoever can get a body signed (or replays one) chooses it. So a fetch goes
out only when the URL is https, its host is one of ATTACHMENT_SOURCE_HOSTS (8x8's documented hosts by default,
and the configured 8x8 base URL's host) and every address the host resolves to is a public one (no private,
loopback, link-local, reserved or multicast address). Redirects are followed by hand, each hop checked the same
way; the address actually connected to is checked again before the answer is read. No credentials go with it.

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
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
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

    def check_peer(self, response: requests.Response) -> None:
        """The address the answer really came from (DNS may have changed since `check`)."""
        peer = _peer_address(response)
        if peer is not None and not self._address_allowed(peer):
            raise SourceRefused("connected to an address casebridge does not fetch from")


def _peer_address(response: requests.Response) -> IpAddress | None:
    connection: Any = getattr(response.raw, "connection", None) or getattr(response.raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    if sock is None:
        return None
    try:
        return ipaddress.ip_address(str(sock.getpeername()[0]).split("%", 1)[0])
    except (OSError, ValueError):
        return None


def fetch(policy: SourcePolicy, url: str, timeout: float) -> requests.Response:
    """GET `url` streamed, following at most MAX_REDIRECTS redirects, every hop checked. Raises SourceRefused, or
    requests' own errors. The answer may be any status: the caller decides."""
    for _ in range(MAX_REDIRECTS + 1):
        try:
            policy.check(url)
        except SourceRefused:
            metrics.add_metric(name="AttachmentSourcesRefused", unit=MetricUnit.Count, value=1)
            raise
        response = requests.get(
            url, stream=True, allow_redirects=False, timeout=(min(timeout, 3.05), max(timeout, 30.0))
        )
        try:
            policy.check_peer(response)
        except SourceRefused:
            response.close()
            metrics.add_metric(name="AttachmentSourcesRefused", unit=MetricUnit.Count, value=1)
            raise
        location = response.headers.get("Location")
        if not response.is_redirect or not location:
            return response
        response.close()
        url = urljoin(url, location)
        logger.info("agent attachment URL redirects; checking the next hop")
    raise SourceRefused(f"more than {MAX_REDIRECTS} redirects")
