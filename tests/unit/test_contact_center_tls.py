"""A TLS failure is a clean failure only when it proves 8x8 never got the request: our refusal of its certificate,
which happens in the handshake, before anything is sent. Any other TLS failure may come after the request went
out, so a create is ambiguous (looked up before creating again) and a message post is counted as a possible
duplicate.

Before, every TLS error was taken for a failed handshake: a server that read the whole create and then broke the
TLS stream left the create unambiguous, and the next opener created a second conversation for the case.

"8x8" here is a real local TLS server (port 0, a certificate made for the test and trusted through the client's
CA bundle); the clients are the real ones."""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from casebridge.business_api.models import Customer
from casebridge.contact_center.base import NewConversation
from casebridge.contact_center.chat_api_v2 import ChatApiV2Client
from casebridge.contact_center.chat_gateway_v1 import ChatGatewayV1Client
from casebridge.contact_center.tokens import AccessToken, TokenProvider
from casebridge.errors import ContactCenterUnavailable
from tests.support.tls import Certificate, self_signed

# An application-data record (TLS 1.2/1.3 framing) whose content no key decrypts: the stream is broken.
CORRUPT_RECORD = b"\x17\x03\x03\x00\x20" + os.urandom(32)


@dataclass
class BreakingServer:
    """Reads each request whole (headers and Content-Length body), then sends a corrupt TLS record and closes.
    One connection at a time: `settled` waits until the server is done with the ones made so far."""

    certificate: Certificate
    host: str = "127.0.0.1"
    requests: list[bytes] = field(default_factory=list)
    handshakes_failed: int = 0
    port: int = 0
    _done: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))

    def start(self) -> socket.socket:
        listener = socket.create_server((self.host, 0))
        self.port = listener.getsockname()[1]
        threading.Thread(target=self._serve, args=(listener,), daemon=True).start()
        return listener

    def settled(self) -> BreakingServer:
        assert self._done.acquire(timeout=5), "the server never finished with the connection"
        return self

    def _serve(self, listener: socket.socket) -> None:
        context = self.certificate.server_context()
        while True:
            try:
                raw, _ = listener.accept()
            except OSError:
                return  # closed: the test is over
            try:
                self._answer(context, raw)
            finally:
                self._done.release()

    def _answer(self, context: ssl.SSLContext, raw: socket.socket) -> None:
        raw.settimeout(5)
        with raw:
            try:
                tls = context.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError):
                self.handshakes_failed += 1
                return
            self.requests.append(_read_request(tls))
            # Beneath TLS, on the same connection: the client reads a record it cannot decrypt.
            with socket.socket(fileno=os.dup(tls.fileno())) as beneath:
                beneath.sendall(CORRUPT_RECORD)
            time.sleep(0.2)  # let the client read it before the close


def _read_request(tls: ssl.SSLSocket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
        0,
    )
    while len(body) < length:
        chunk = tls.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


@pytest.fixture
def server(tmp_path: Path) -> Iterator[BreakingServer]:
    made = BreakingServer(self_signed(tmp_path, "eight"))
    listener = made.start()
    yield made
    listener.close()


def client_for(api: str, base_url: str, trusted: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The real client with its default session, trusting only `trusted` (requests reads the bundle from the
    environment, which would otherwise name the system's)."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(trusted))
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    if api == "chat-gateway-v1":
        return ChatGatewayV1Client(base_url, "acme-tenant", lambda: "key-1", timeout=3.0)
    far = int((time.time() + 3600) * 1000)
    tokens = TokenProvider("acme-tenant", lambda: AccessToken("token-1", far))
    return ChatApiV2Client(base_url, "us", "acme-tenant", tokens, timeout=3.0)


def call(client: Any, operation: str) -> None:
    if operation == "create":
        client.create_conversation(NewConversation("channel-1", "case-1", Customer(), []))
    else:
        client.send_message("conv-1", "hello", "user")


@pytest.mark.parametrize("operation", ["create", "send"])
@pytest.mark.parametrize("api", ["chat-gateway-v1", "chat-api-v2"])
def test_a_tls_stream_broken_after_8x8_read_the_request_is_ambiguous(
    server: BreakingServer, monkeypatch: pytest.MonkeyPatch, api: str, operation: str
) -> None:
    client = client_for(api, f"https://localhost:{server.port}", server.certificate.cert, monkeypatch)
    with pytest.raises(ContactCenterUnavailable) as raised:
        call(client, operation)
    assert len(server.settled().requests) == 1, "8x8 read the whole request"
    assert server.requests[0].startswith(b"POST ") and server.requests[0].endswith(b"}")
    assert raised.value.ambiguous is True, "8x8 may have acted on it"
    assert "TLS" in raised.value.message, "a TLS failure, not a dropped connection"


@pytest.mark.parametrize("operation", ["create", "send"])
@pytest.mark.parametrize("api", ["chat-gateway-v1", "chat-api-v2"])
def test_a_certificate_the_client_refuses_is_a_clean_failure(
    server: BreakingServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, api: str, operation: str
) -> None:
    """The client trusts another certificate: the handshake stops at 8x8's, before any byte of the request."""
    other = self_signed(tmp_path, "other")
    client = client_for(api, f"https://localhost:{server.port}", other.cert, monkeypatch)
    with pytest.raises(ContactCenterUnavailable) as raised:
        call(client, operation)
    assert server.settled().requests == [] and server.handshakes_failed == 1
    assert (raised.value.ambiguous, raised.value.retryable) == (False, True)


def test_a_certificate_for_another_host_is_a_clean_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trusted, but not 127.0.0.2's (the certificate names localhost and 127.0.0.1): refused in the handshake."""
    server = BreakingServer(self_signed(tmp_path, "eight"), host="127.0.0.2")
    listener = server.start()
    try:
        client = client_for("chat-gateway-v1", f"https://127.0.0.2:{server.port}", server.certificate.cert, monkeypatch)
        with pytest.raises(ContactCenterUnavailable) as raised:
            call(client, "create")
        server.settled()
    finally:
        listener.close()
    assert server.requests == [] and server.handshakes_failed == 1
    assert raised.value.ambiguous is False
