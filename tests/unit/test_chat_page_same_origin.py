"""The local chat page's helper adds the business API key to the page's own requests only: another site's page
(a cross-site POST, a fetch with CORS) and a DNS-rebound name (Host: a domain that resolves to this machine) are
refused before anything is forwarded. The helper is real (ChatPageServer on port 0), the business API a local
stub that records what reaches it."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from scripts.local_stack.chat_page.server import ChatPageServer


class BusinessApiStub:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str | None]] = []  # method, path, x-api-key
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.seen.append((self.command, self.path, self.headers.get("x-api-key")))
                body = b'{"ok": true}'
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

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def page() -> Iterator[tuple[ChatPageServer, BusinessApiStub]]:
    api = BusinessApiStub()
    server = ChatPageServer(api.url, "the-api-key").start()
    yield server, api
    server.stop()
    api.close()


def call(server: ChatPageServer, method: str, path: str, headers: dict[str, str], body: Any = None) -> int:
    port = int(server.url.rsplit(":", 1)[1].strip("/"))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    data = json.dumps(body).encode() if body is not None else None
    sent = {"Content-Type": "application/json", **headers} if data else dict(headers)
    connection.putrequest(method, path, skip_host=True)
    for name, value in sent.items():
        connection.putheader(name, value)
    if data:
        connection.putheader("Content-Length", str(len(data)))
    connection.endheaders(data)
    status = connection.getresponse().status
    connection.close()
    return status


def own(server: ChatPageServer) -> str:
    return server.url.removeprefix("http://").rstrip("/")  # 127.0.0.1:<port>


def test_the_pages_own_requests_are_forwarded_with_the_key(page: tuple[ChatPageServer, BusinessApiStub]) -> None:
    server, api = page
    host = own(server)
    port = host.rsplit(":", 1)[1]
    assert call(server, "GET", "/api/cases/c1", {"Host": host}) == 200
    origin = f"http://{host}"
    assert call(server, "POST", "/api/cases/c1/messages", {"Host": host, "Origin": origin}, {"text": "hi"}) == 200
    same = {"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}", "Sec-Fetch-Site": "same-origin"}
    assert call(server, "POST", "/api/cases/c1/messages", same, {"text": "hi"}) == 200
    assert [(m, p, k) for m, p, k in api.seen] == [
        ("GET", "/cases/c1", "the-api-key"),
        ("POST", "/cases/c1/messages", "the-api-key"),
        ("POST", "/cases/c1/messages", "the-api-key"),
    ]


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:1"},  # another port is another origin
        {"Sec-Fetch-Site": "cross-site"},
    ],
    ids=["other-site", "opaque-origin", "other-port", "fetch-metadata"],
)
def test_a_cross_site_request_is_refused_and_nothing_is_forwarded(
    page: tuple[ChatPageServer, BusinessApiStub], headers: dict[str, str]
) -> None:
    server, api = page
    status = call(server, "POST", "/api/cases/c1/messages", {"Host": own(server), **headers}, {"text": "hi"})
    assert status == 403
    assert api.seen == []


@pytest.mark.parametrize("host", ["evil.example", "rebind.attacker.test:{port}", "localhost.evil.example:{port}"])
def test_a_dns_rebound_host_is_refused_and_nothing_is_forwarded(
    page: tuple[ChatPageServer, BusinessApiStub], host: str
) -> None:
    """A name the attacker controls, resolving to 127.0.0.1: the browser calls it same-origin (the attacker's
    origin), so Origin does not help; only the Host header tells."""
    server, api = page
    port = own(server).rsplit(":", 1)[1]
    rebound = host.format(port=port)
    assert call(server, "GET", "/api/cases/c1", {"Host": rebound}) == 403
    origin = {"Host": rebound, "Origin": f"http://{rebound}"}
    assert call(server, "POST", "/api/cases/c1/messages", origin, {"text": "hi"}) == 403
    assert api.seen == []


def test_the_helper_serves_no_event_stream_the_page_is_on_the_websocket(
    page: tuple[ChatPageServer, BusinessApiStub],
) -> None:
    """The page's live events come on the channel WebSocket: the helper's old bus stream is gone, and it forwards
    nothing off its allow-list."""
    server, api = page
    port = int(server.url.rsplit(":", 1)[1].strip("/"))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/api/cases/c1/stream", headers={"Host": own(server)})
    answer = connection.getresponse()
    body = json.loads(answer.read())
    connection.close()
    assert (answer.status, body["error"]["code"]) == (404, "NotFound")
    assert "no route GET /api/cases/c1/stream" in body["error"]["message"]
    assert api.seen == []
