"""The chat page's HTTP server: static files and the API-key-holding forwarder (the page's live events come on
the channel WebSocket, with a token the forwarder fetches: `POST /api/cases/{id}/channel-tokens`)."""

from __future__ import annotations

import ipaddress
import json
import re
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import requests

from cc_emulator.http_base import SHARED_STATIC, LocalHTTPServer, MethodHandler, static_file

# The page's own files, then the browser helpers it shares with the emulator's agent desk.
STATIC = (Path(__file__).parent / "static", SHARED_STATIC)
CASE_ID = r"(?P<case>[A-Za-z0-9._:%-]{1,384})"
# What the page may ask of the business API: (method, path under /api, the business API path).
FORWARDED: list[tuple[str, re.Pattern[str]]] = [
    (method, re.compile(f"^/api/cases/{CASE_ID}{tail}$"))
    for method, tail in [
        ("POST", "/conversation"),
        ("DELETE", "/conversation"),
        ("GET", ""),
        ("GET", "/events"),
        ("POST", "/messages"),
        ("POST", "/typing"),
        ("POST", "/read"),
        ("POST", "/channel-tokens"),
        ("GET", "/attachments/(?P<attachment>[A-Za-z0-9._:%-]{1,512})"),
    ]
]
FILES = re.compile(f"^/api/cases/{CASE_ID}/files$")
MAX_BODY = 10 * 1024 * 1024
# A file goes through whole: more than the business API accepts, so its own limit is the one the customer reads.
MAX_FILE_BODY = 64 * 1024 * 1024
PENDING_FILE_WAIT_SECONDS = 15.0


class ChatPageServer:
    """`ChatPageServer(api_url, api_key).start()`; `url` is the page."""

    def __init__(
        self,
        api_url: str,
        api_key: str,
        host: str = "127.0.0.1",
        port: int = 0,
        attachments: bool = True,
        read_receipts: bool = True,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.api_key = api_key
        # Files work on the Chat Gateway only: on Chat API v2 the page offers none.
        self.attachments = attachments
        # So are read receipts (POST /cases/{id}/read: v2 answers 400): the page sends them where they work.
        self.read_receipts = read_receipts
        self._httpd = _Server((host, port), self)
        # Set on stop: a wait for a pending file ends at once.
        self.stopping = self._httpd.stopping
        self._local = threading.local()

    @property
    def url(self) -> str:
        return self._httpd.base_url + "/"

    def start(self) -> ChatPageServer:
        self._httpd.serve_in_background("chat-page", poll_interval=0.1)
        return self

    def stop(self) -> None:
        self._httpd.close()

    def session(self) -> requests.Session:
        """One session per handler thread (requests' sessions are not thread-safe); the key lives here only."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False
            session.headers["x-api-key"] = self.api_key
            self._local.session = session
        return session


class _Server(LocalHTTPServer):
    def __init__(self, address: tuple[str, int], page: ChatPageServer) -> None:
        self.page = page
        super().__init__(address, _Handler)


class _Handler(MethodHandler):
    server: _Server
    server_version = "casebridge-chat-page/1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: request lines would carry case ids; the local API logs the business calls already."""

    # -- dispatch ------------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        split = urlsplit(self.path)
        path = split.path
        upload = method == "POST" and FILES.match(path)
        try:
            body = self._read_body(MAX_FILE_BODY if upload else MAX_BODY)
        except ValueError as error:
            self.close_connection = True  # the body was not read
            if "large" not in str(error):
                self._json(400, {"error": {"code": "BadRequest", "message": str(error)}})
            elif upload:
                message = f"the file is larger than {MAX_FILE_BODY // (1024 * 1024)} MB"
                self._json(413, {"error": {"code": "AttachmentTooLarge", "message": message}})
            else:
                self._json(413, {"error": {"code": "PayloadTooLarge", "message": str(error)}})
            return
        refused = self._not_same_origin(path)
        if refused:
            self._json(403, {"error": {"code": "NotSameOrigin", "message": refused}})
            return
        if method == "GET" and path == "/api/config":
            page = self.server.page
            self._json(200, {"attachments": page.attachments, "readReceipts": page.read_receipts})
        elif method == "GET" and path in ("/", "/index.html"):
            self._static("index.html")
        elif method == "GET" and path.startswith("/static/"):
            self._static(path.removeprefix("/static/"))
        elif method == "POST" and (m := FILES.match(path)):
            self._upload(m["case"], body)
        elif any(method == allowed and pattern.match(path) for allowed, pattern in FORWARDED):
            self._forward(method, path.removeprefix("/api"), split.query, body)
        else:
            self._json(404, {"error": {"code": "NotFound", "message": f"no route {method} {path}"}})

    # -- same origin only -----------------------------------------------------------------------

    def _not_same_origin(self, path: str) -> str | None:
        """Why the request may not use the helper (None: it may). The Host must name this machine (an IP literal
        or localhost) on this server's port: a DNS-rebound name, which the browser thinks is the attacker's own
        origin, is refused. For /api/, a browser's cross-site request (Origin not this Host; Sec-Fetch-Site
        cross-site or same-site) is refused too. A client without Origin (curl) is no browser: no ambient key."""
        port = int(self.server.server_address[1])
        host = self.headers.get("Host") or ""
        if not _is_this_machine(host, port):
            return "the Host header must name this machine (127.0.0.1, [::1] or localhost) and its port"
        if not path.startswith("/api/"):
            return None
        origin = self.headers.get("Origin")
        if origin is not None and origin != f"http://{host}":
            return "the chat page's helper answers its own page only (same origin)"
        if self.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            return "the chat page's helper answers its own page only (same origin)"
        return None

    # -- answers -------------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self._write(status, body, {**headers, "X-Content-Type-Options": "nosniff"})

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj).encode("utf-8"), {"Content-Type": "application/json"})

    def _static(self, name: str) -> None:
        found = static_file(name, *STATIC)
        if found is None:
            self._json(404, {"error": {"code": "NotFound", "message": f"no file {name}"}})
            return
        self._send(found.status, found.body, found.headers)

    # -- the helper: business API calls with the key added ------------------------------------

    def _forward(self, method: str, path: str, query: str, body: bytes) -> None:
        page = self.server.page
        url = page.api_url + path + (f"?{query}" if query else "")
        headers = {"Content-Type": self.headers.get("Content-Type") or "application/json"} if body else {}
        # An agent's file is copied from 8x8 after its message arrives: a click on it waits for the copy (bounded).
        deadline = time.monotonic() + PENDING_FILE_WAIT_SECONDS
        try:
            while True:
                answer = page.session().request(method, url, data=body or None, headers=headers, allow_redirects=False)
                if not (_is_pending_file(answer) and time.monotonic() < deadline and not page.stopping.is_set()):
                    break
                page.stopping.wait(0.25)
        except requests.RequestException as error:
            self._json(502, {"error": {"code": "ApiUnreachable", "message": str(error)}})
            return
        passed = {"Content-Type": answer.headers.get("Content-Type", "application/json")}
        for name in ("Location", "Retry-After"):
            if name in answer.headers:
                passed[name] = answer.headers[name]
        self._send(answer.status_code, answer.content, passed)

    def _upload(self, case: str, data: bytes) -> None:
        """A file from the page: ask the business API for an upload URL, upload there, answer the attachment id.
        The page then sends a message with `attachments: [id]`."""
        page = self.server.page
        name = unquote(self.headers.get("X-File-Name") or "file")
        content_type = self.headers.get("Content-Type") or "application/octet-stream"
        session = page.session()
        try:
            answer = session.post(
                f"{page.api_url}/cases/{case}/attachments",
                json={"fileName": name, "contentType": content_type, "size": len(data)},
            )
            if answer.status_code not in (200, 201):
                self._send(answer.status_code, answer.content, {"Content-Type": answer.headers.get("Content-Type", "")})
                return
            grant = answer.json()
            # {attachmentId, uploadUrl, uploadMethod, uploadHeaders}: the pre-signed URL carries its own authority,
            # so no API key goes to storage.
            stored = requests.request(
                str(grant.get("uploadMethod") or "PUT"),
                str(grant["uploadUrl"]),
                data=data,
                headers=dict(grant.get("uploadHeaders") or {"Content-Type": content_type}),
                timeout=30,
            )
        except (requests.RequestException, ValueError, KeyError) as error:
            self._json(502, {"error": {"code": "UploadFailed", "message": str(error)}})
            return
        if stored.status_code >= 300:
            message = f"storage answered {stored.status_code}"
            self._json(502, {"error": {"code": "UploadFailed", "message": message}})
            return
        attachment_id = grant["attachmentId"]
        self._json(201, {"attachmentId": attachment_id, "fileName": name, "contentType": content_type})


def _is_this_machine(host_header: str, port: int) -> bool:
    """Host is `<IP literal or localhost>:<port>`. An IP literal cannot be rebound (rebinding needs a name)."""
    name, _, given_port = host_header.rpartition(":")
    if not name or given_port != str(port):
        return False
    if name.lower() == "localhost":
        return True
    try:
        ipaddress.ip_address(name.removeprefix("[").removesuffix("]"))
    except ValueError:
        return False
    return True


def _is_pending_file(answer: requests.Response) -> bool:
    if answer.status_code != 409:
        return False
    try:
        return bool(answer.json()["error"]["code"] == "AttachmentPending")
    except (ValueError, KeyError, TypeError):
        return False
