"""The copier fetches agents' files only from 8x8: https, 8x8's file hosts (a setting), public addresses after DNS,
every redirect hop checked, and 8x8's credentials never sent anywhere but the configured 8x8 base URL.

The URL comes from a webhook body. Before, the copier fetched whatever it named (http to loopback or a private
address included, redirects followed), stored the answer and served it through the business API."""
# ruff: noqa: PLC0415, F811 - casebridge imported after the environment is set; fixtures imported

from __future__ import annotations

import dataclasses
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import responses

from tests.support.connector import map_case
from tests.support.signing import WebhookSigner
from tests.support.tls import self_signed
from tests.unit.test_attachments import (  # noqa: F401 - `gateway` and `file_server` are fixtures
    CASE,
    CONVERSATION,
    PNG,
    agent_message,
    copy_jobs,
    file_server,
    gateway,
    run_copier,
)

FILES = "https://files.8x8.test"
PUBLIC = "93.184.216.34"


def policy(**changes: Any) -> Any:
    from casebridge.attachments.sources import SourcePolicy

    addresses = {"files.8x8.test": [PUBLIC], "metadata.8x8.test": ["169.254.169.254"], "inside.8x8.test": ["10.0.0.5"]}
    made = SourcePolicy(
        frozenset({"files.8x8.test", "metadata.8x8.test", "inside.8x8.test"}),
        resolver=lambda host, port: addresses[host],
    )
    return replace(made, **changes)


def refused(url: str, **changes: Any) -> bool:
    from casebridge.attachments import sources

    try:
        sources.fetch(policy(**changes), url, 5.0).close()
    except sources.SourceRefused:
        return True
    return False


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://files.8x8.test/att", "cleartext"),
        ("https://evil.example/att", "not one of 8x8's file hosts"),
        ("https://metadata.8x8.test/latest/meta-data", "link-local after DNS"),
        ("https://inside.8x8.test/admin", "private after DNS"),
        ("https://127.0.0.1/att", "loopback, and not a file host"),
        ("ftp://files.8x8.test/att", "another scheme"),
    ],
)
def test_only_https_to_8x8s_file_hosts_at_public_addresses_is_fetched(url: str, why: str) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(url, body=b"secret")
        assert refused(url), why
        assert len(rsps.calls) == 0, f"{why}: never requested"


def test_a_redirect_off_8x8s_hosts_or_to_cleartext_is_not_followed() -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(f"{FILES}/to-http", status=302, headers={"Location": "http://10.0.0.5/latest/meta-data"})
        rsps.get(f"{FILES}/to-other", status=302, headers={"Location": "https://evil.example/x"})
        rsps.get(f"{FILES}/fine", status=302, headers={"Location": f"{FILES}/file"})
        rsps.get(f"{FILES}/file", body=b"the file")
        inside = rsps.get("http://10.0.0.5/latest/meta-data", body=b"credentials")
        other = rsps.get("https://evil.example/x", body=b"x")
        assert refused(f"{FILES}/to-http") and refused(f"{FILES}/to-other")
        assert (inside.call_count, other.call_count) == (0, 0)
        assert not refused(f"{FILES}/fine"), "a redirect within 8x8's hosts is followed"


def test_loopback_over_http_only_when_the_setting_allows_it() -> None:
    loopback = {"files.8x8.test": ["127.0.0.1"]}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get("http://files.8x8.test/att", body=b"x")
        assert refused("http://files.8x8.test/att", resolver=lambda host, port: loopback[host])
        assert not refused("http://files.8x8.test/att", resolver=lambda host, port: loopback[host], loopback_http=True)


def test_the_default_hosts_are_8x8s_documented_ones_and_loopback_is_off() -> None:
    from casebridge.settings import load_settings

    settings = load_settings({"CASES_TABLE_NAME": "t", "EIGHTXEIGHT_TENANT_ID": "acme"})
    assert settings.attachment_source_hosts == "api.8x8.com"
    assert settings.attachment_sources_loopback == "false"


def test_a_webhooks_http_url_to_this_machine_is_not_fetched_by_default(
    gateway: SimpleNamespace, webhook_signer: WebhookSigner
) -> None:
    """With the settings' defaults (no loopback, 8x8's hosts), an agent file whose URL names this machine over
    http is taken from 8x8's API instead; the URL is never requested."""
    from casebridge import webhooks
    from casebridge.services import set_services

    settings = dataclasses.replace(
        gateway.services.settings, attachment_source_hosts="api.8x8.com", attachment_sources_loopback="false"
    )
    set_services(replace(gateway.services, settings=settings))
    gateway.services = replace(gateway.services, settings=settings)
    map_case(CASE, CONVERSATION)
    gateway.files.files["att-5"] = ("image/png", PNG)
    files = [{"id": "att-5", "type": "image", "fileName": "x.png", "preSignedUrl": f"{gateway.files.url}/signed/att-5"}]
    webhooks.handle_webhook(gateway.services, *agent_message(webhook_signer, files))
    assert run_copier(gateway, copy_jobs(gateway)) == {"batchItemFailures": []}
    assert gateway.files.hits == ["/content/att-5"], "only the API's content endpoint (the test's fake 8x8)"


def test_8x8s_credentials_never_follow_a_redirect_off_the_base_url() -> None:
    """8x8's content endpoint answering a redirect: not followed (requests would have sent x-api-key and
    X-8x8-Tenant along to wherever it points); the copy is retried, nothing reaches the other host."""
    from casebridge.attachments.copier import _from_api
    from casebridge.contact_center.chat_gateway_v1 import ChatGatewayV1Client
    from casebridge.errors import ContactCenterError

    base = "https://api.8x8.test"
    client = ChatGatewayV1Client(base, "acme", lambda: "the-api-key")
    content = f"{base}/chat-gateway/v1/conversations/conv-1/attachments/att-1/content"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(content, status=302, headers={"Location": f"{FILES}/signed/att-1"})
        signed = rsps.get(f"{FILES}/signed/att-1", body=b"the file")
        services = SimpleNamespace(contact_center=client)
        with pytest.raises(ContactCenterError):
            _from_api(services, {"conversationId": "conv-1", "contactCenterId": "att-1"})  # type: ignore[arg-type]
        assert signed.call_count == 0
        assert rsps.calls[0].request.headers["x-api-key"] == "the-api-key", "the base URL does get them"


# ---- the address connected to, checked before anything is sent ---------------------------------------------


class TlsFileServer:
    """A file host over https on 127.0.0.1, its certificate for localhost (trusted through REQUESTS_CA_BUNDLE),
    answering in `shape`: HTTP/1.0, HTTP/1.1 with `Connection: close`, or HTTP/1.1 kept alive. `connections`
    counts TCP connections, `handshakes` finished TLS handshakes, `hits` requests read."""

    def __init__(self, tmp_path: Path, shape: str) -> None:
        self.connections = self.handshakes = 0
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0" if shape == "http/1.0" else "HTTP/1.1"

            def setup(self) -> None:
                outer.connections += 1
                try:
                    self.request.do_handshake()
                except (ssl.SSLError, OSError):
                    self.request.close()
                    raise
                outer.handshakes += 1
                super().setup()

            def do_GET(self) -> None:
                outer.hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(PNG)))
                if shape == "connection: close":
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(PNG)

            def log_message(self, *_: Any) -> None:
                return

        class Server(ThreadingHTTPServer):
            def handle_error(self, *_: Any) -> None:
                return  # a refused client hangs up mid-handshake

            def shutdown_request(self, request: Any) -> None:
                super().shutdown_request(request)
                outer.done.release()  # this connection is over, however it went

        certificate = self_signed(tmp_path)
        self.ca_bundle = certificate.cert
        self.done = threading.Semaphore(0)
        self.server = Server(("127.0.0.1", 0), Handler)
        # The handshake happens in the handler's thread (setup), not in the accepting loop.
        self.server.socket = certificate.server_context().wrap_socket(
            self.server.socket, server_side=True, do_handshake_on_connect=False
        )
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(params=["http/1.0", "connection: close", "keep-alive"])
def tls_file_server(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TlsFileServer]:
    server = TlsFileServer(tmp_path, request.param)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca_bundle))
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    yield server
    server.stop()


def settled(server: TlsFileServer) -> TlsFileServer:
    """The server is done with the connection the client made."""
    assert server.done.acquire(timeout=5), "no connection reached the server"
    return server


def test_a_host_that_resolves_elsewhere_when_connecting_is_refused_before_the_request_is_sent(
    tls_file_server: TlsFileServer,
) -> None:
    """DNS answered a public address for the check and loopback for the connection (a rebinding name): the socket's
    peer is refused the moment it connects, whatever shape the answer would have had. Before, the peer was checked
    only on the answer, after the request had gone out, and skipped when the answer had closed its connection
    (HTTP/1.0, `Connection: close`)."""
    from casebridge.attachments import sources
    from casebridge.attachments.copier import _from_url

    url = f"https://localhost:{tls_file_server.port}/signed/att-1"
    rebinding = policy(hosts=frozenset({"localhost"}), resolver=lambda host, port: [PUBLIC])
    with pytest.raises(sources.SourceRefused, match="connected to an address"):
        sources.fetch(rebinding, url, 5.0)
    assert _from_url(rebinding, url, 5.0) is None, "the copier takes the file from 8x8's API instead"
    server = settled(settled(tls_file_server))
    assert server.connections == 2, "the client did connect: the refusal is the peer check's"
    assert (server.handshakes, server.hits) == (0, []), "no TLS, no request"


def test_the_same_file_host_is_read_when_its_address_is_allowed(tls_file_server: TlsFileServer) -> None:
    """The checked connection reads every shape of answer (loopback allowed, as the local stack allows it)."""
    from casebridge.attachments import sources

    url = f"https://localhost:{tls_file_server.port}/signed/att-1"
    local = policy(hosts=frozenset({"localhost"}), resolver=lambda host, port: ["127.0.0.1"], loopback_http=True)
    response = sources.fetch(local, url, 5.0)
    with response:
        assert (response.status_code, response.content) == (200, PNG)
    assert tls_file_server.hits == ["/signed/att-1"]


@pytest.mark.parametrize("tls_file_server", ["http/1.0"], indirect=True)
def test_a_file_fetch_never_goes_through_a_proxy(
    tls_file_server: TlsFileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through a proxy the socket would reach the proxy, not the file host: nothing to check, so no fetch."""
    from casebridge.attachments import sources

    proxy = socket.create_server(("127.0.0.1", 0))
    with proxy:
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.getsockname()[1]}")
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        local = policy(hosts=frozenset({"localhost"}), resolver=lambda host, port: ["127.0.0.1"], loopback_http=True)
        with pytest.raises(sources.SourceRefused, match="proxy"):
            sources.fetch(local, f"https://localhost:{tls_file_server.port}/signed/att-1", 5.0)
    assert tls_file_server.connections == 0
