"""8x8's side of files in the simulation: the files casebridge uploads to a conversation (8x8 refuses some for
good: its channel does not take them, and no retry or redrive can help), and the files agents send, served at a
pre-signed URL on 8x8's file host until it expires, and at the API's …/attachments/{id}/content unless 8x8 no
longer has the file. Also the HTTP answers the 8x8 model builds (a file's answer is streamed: `response.raw`)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from requests.structures import CaseInsensitiveDict

if TYPE_CHECKING:
    from tests.simulation.contact_center import Conversation
    from tests.simulation.world import World

FILE_HOST = "files.8x8.sim"  # where 8x8's pre-signed URLs to agents' files point


@dataclass
class Upload:
    """A file casebridge uploaded to a conversation (POST …/attachments)."""

    conversation_id: str
    file_name: str
    body: bytes


@dataclass
class AgentFile:
    """A file an agent sent: served at its pre-signed URL until it expires, and at …/attachments/{id}/content
    unless 8x8 no longer has it."""

    conversation_id: str
    file_name: str
    body: bytes
    url_expires_at: float
    gone: bool = False


class Files:
    def __init__(self, world: World, next_id: Callable[[str], str]) -> None:
        self.world = world
        self.next_id = next_id
        self.uploads: dict[str, Upload] = {}
        self.agent: dict[str, AgentFile] = {}
        self.refused: dict[bytes, bool] = {}

    def upload(self, conversation_id: str, files: dict[str, Any]) -> tuple[int, Any]:
        """POST …/conversations/{id}/attachments (multipart): 8x8's id of the file, or its refusal."""
        _, (file_name, stream, _) = next(iter(files.items()))
        content = stream.read()
        if self._refuses(content):
            return 415, {"message": "unsupported media type for this channel"}
        upload_id = self.next_id("att-")
        self.uploads[upload_id] = Upload(conversation_id, str(file_name), content)
        return 201, {"id": upload_id}

    def content(self, conversation_id: str, file_id: str) -> tuple[int, Any]:
        """GET …/conversations/{id}/attachments/{fileId}/content."""
        found = self.agent.get(file_id)
        if found is None or found.gone or found.conversation_id != conversation_id:
            return 404, {"message": "no such attachment"}
        return 200, _File(found.body)

    def _refuses(self, content: bytes) -> bool:
        if content not in self.refused:
            self.refused[content] = self.world.draw(20, "8x8 refuses the file") == 0
        return self.refused[content]

    def agent_files(self, conversation: Conversation) -> list[str]:
        """One or two files; each URL lives a while, briefly, or is expired on arrival; now and then 8x8 no longer
        has the file by the time it is fetched."""
        draw = self.world.draw
        made = []
        for _ in range(1 + draw(2, "agent files")):
            file_id = self.next_id("file-")
            lifetime = (3600.0, 20.0, 0.0)[draw(3, "file URL lifetime")]
            body = f"agent file {file_id} of {conversation.id}".encode()
            gone = draw(12, "file gone") == 0
            self.agent[file_id] = AgentFile(conversation.id, f"{file_id}.png", body, self.world.now + lifetime, gone)
            made.append(file_id)
        return made

    def file_get(self, url: str, **_: Any) -> requests.Response:
        """GET of an agent file's pre-signed URL (the copier's `sources.checked_get`, no credentials)."""
        fault = self.world.step(f"8x8 files GET {url}", "contact_center", ("refused", "500", "timeout-before"), 0.15)
        if fault == "refused":
            raise requests.ConnectionError("Connection refused (NewConnectionError)")
        if fault == "timeout-before":
            self.world.sleep(5.0)
            raise requests.ReadTimeout("read timed out (sim)")
        if fault == "500":
            return _response(500, {"message": "injected"})
        parts = urlsplit(url)
        found = self.agent.get(parts.path.lstrip("/"))
        if parts.hostname != FILE_HOST or found is None or found.gone:
            return _response(404, {"message": "no such file"})
        if self.world.now >= found.url_expires_at:
            return _response(403, {"message": "Request has expired"})
        return _stream(found.body)


class _File:
    """A file's bytes as 8x8 serves them: streamed (the copier reads `response.raw`)."""

    def __init__(self, body: bytes) -> None:
        self.body = body


class _Raw(io.BytesIO):
    decode_content = False


def _stream(body: bytes) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response.raw = _Raw(body)
    response.headers = CaseInsensitiveDict({"Content-Type": "image/png", "Content-Length": str(len(body))})
    return response


def _response(status: int, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
    if isinstance(body, _File):
        return _stream(body.body)
    response = requests.Response()
    response.status_code = status
    response._content = b"" if body is None else json.dumps(body).encode()
    response._content_consumed = True  # type: ignore[attr-defined]  # read whole: closing it closes nothing more
    response.raw = _Raw(response._content)
    response.headers = CaseInsensitiveDict({"Content-Type": "application/json", **(headers or {})})
    response.encoding = "utf-8"
    return response
