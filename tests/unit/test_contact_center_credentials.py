"""8x8's credentials stay with 8x8: a redirect is never followed with them (x-api-key, X-8x8-Tenant, a bearer
token, the token request's basic auth), and a short-lived v2 token is not fetched again on every call.

"8x8" here is a real local HTTP server (port 0) that answers every call with a redirect to a second one standing
for any other host; the clients are the real ones with their default sessions."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from casebridge.contact_center.chat_api_v2 import ChatApiV2Client, token_fetcher
from casebridge.contact_center.chat_gateway_v1 import ChatGatewayV1Client
from casebridge.contact_center.tokens import AccessToken, TokenProvider
from casebridge.errors import ContactCenterError
from casebridge.provisioning.client import _Client

CREDENTIAL_HEADERS = ("x-api-key", "x-8x8-tenant", "authorization")


@dataclass
class Server:
    """A local HTTP server: `redirect_to` set, every request is answered 307 to it; otherwise 200 with a token."""

    redirect_to: str = ""
    seen: list[dict[str, str]] = field(default_factory=list)
    url: str = ""

    def start(self, host: str) -> ThreadingHTTPServer:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                outer.seen.append({k.lower(): v for k, v in self.headers.items()} | {"path": self.path})
                if outer.redirect_to:
                    self.send_response(307)
                    self.send_header("Location", outer.redirect_to + self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps({"access_token": "tok", "expires_in": "3600", "conversationId": "c"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def log_message(self, *_: Any) -> None:
                pass

        server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


@pytest.fixture
def servers() -> Iterator[tuple[Server, Server]]:
    """(8x8, elsewhere): 8x8 redirects everything elsewhere (another port: another origin)."""
    elsewhere, eight = Server(), Server()
    running = [elsewhere.start("127.0.0.1")]
    eight.redirect_to = elsewhere.url
    running.append(eight.start("127.0.0.1"))
    yield eight, elsewhere
    for server in running:
        server.shutdown()
        server.server_close()


def credentials_seen(server: Server) -> list[tuple[str, str]]:
    return [(h["path"], name) for h in server.seen for name in CREDENTIAL_HEADERS if name in h]


def test_the_gateway_client_does_not_follow_a_redirect_with_its_api_key(servers: tuple[Server, Server]) -> None:
    eight, elsewhere = servers
    client = ChatGatewayV1Client(eight.url, "acme-tenant", lambda: "secret-key")
    with pytest.raises(ContactCenterError) as refused:
        client.send_message("conv-1", "hello", "user")
    assert "redirect" in refused.value.message
    assert not refused.value.retryable
    assert eight.seen and eight.seen[0]["x-api-key"] == "secret-key"
    assert elsewhere.seen == [], "nothing, credentials or not, goes where a redirect points"


def test_the_v2_client_does_not_follow_a_redirect_with_its_token_or_its_secret(
    servers: tuple[Server, Server],
) -> None:
    eight, elsewhere = servers
    fetch = token_fetcher(eight.url, lambda: ("key", "secret"))
    with pytest.raises(ContactCenterError):
        fetch()  # the token endpoint redirects: the basic auth stays home
    eight.redirect_to = ""
    tokens = TokenProvider("acme-tenant", fetch)
    client = ChatApiV2Client(eight.url, "us", "acme-tenant", tokens)
    tokens.get()
    eight.redirect_to = elsewhere.url
    with pytest.raises(ContactCenterError):
        client.send_message("conv-1", "hello", "user")
    assert any("authorization" in h for h in eight.seen)
    assert elsewhere.seen == []


def test_provisioning_does_not_follow_a_redirect_with_the_credentials(servers: tuple[Server, Server]) -> None:
    """The custom resource's calls carry the same credentials."""
    eight, elsewhere = servers
    [session_field] = [f for f in dataclasses.fields(_Client) if f.name == "session"]
    session = session_field.default_factory()  # type: ignore[misc]
    session.get(eight.url + "/x", headers={"x-api-key": "k"}, timeout=5)
    assert elsewhere.seen == []


# ---- a short token lifetime --------------------------------------------------------------------------------
@pytest.mark.parametrize("lifetime_s", [30, 60, 120])
def test_a_short_token_lifetime_does_not_fetch_a_token_on_every_call(lifetime_s: int) -> None:
    """The refresh margin (two minutes) used to swallow a lifetime of two minutes or less whole: every call
    fetched a token. A token is refreshed at a fraction of its lifetime: within the first half, no new fetch."""
    now = [1_000_000.0]
    fetched: list[float] = []

    def fetch() -> AccessToken:
        fetched.append(now[0])
        return AccessToken(f"tok-{len(fetched)}", int((now[0] + lifetime_s) * 1000))

    tokens = TokenProvider("acme-tenant", fetch, clock=lambda: now[0])
    for _ in range(50):
        tokens.get()
        now[0] += lifetime_s / 100  # fifty calls within half the lifetime
    assert len(fetched) == 1
    now[0] += lifetime_s * 0.5  # past three quarters: refreshed before it expires
    tokens.get()
    assert len(fetched) == 2


def test_a_long_token_lifetime_keeps_the_two_minute_margin() -> None:
    now = [1_000_000.0]
    fetched: list[float] = []

    def fetch() -> AccessToken:
        fetched.append(now[0])
        return AccessToken("tok", int((now[0] + 3600) * 1000))

    tokens = TokenProvider("acme-tenant", fetch, clock=lambda: now[0])
    tokens.get()
    now[0] += 3600 - 121
    tokens.get()
    assert len(fetched) == 1
    now[0] += 2
    tokens.get()
    assert len(fetched) == 2
