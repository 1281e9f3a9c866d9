"""S3 in memory: the stack's attachment bucket, as casebridge.attachments.storage calls it.

Pre-signed URLs are signed locally (no call, no step); the channel's PUT to one lands in the bucket at once. Every
other call is a step: HeadObject, ListObjectsV2, GetObject (IfMatch kept; the body may break off while 8x8's
upload reads it), and upload_fileobj (read to its end, then stored; the answer may be lost after it took effect).
"""
# ruff: noqa: N803 - the stand-in takes boto3's parameter names

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from botocore.exceptions import ClientError, ReadTimeoutError

if TYPE_CHECKING:
    from tests.simulation.world import World

BUCKET = "casebridge-attachments"


@dataclass
class StoredObject:
    body: bytes
    content_type: str
    etag: str


def _error(code: str, status: int, operation: str) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, operation)


class _Body(io.BytesIO):
    """GetObject's StreamingBody; `broken`: the stream breaks off at the first read."""

    def __init__(self, data: bytes, broken: bool) -> None:
        super().__init__(data)
        self.broken = broken

    def read(self, amt: int | None = None, /) -> bytes:
        if self.broken:
            raise OSError("connection reset while reading the object (sim)")
        return super().read(amt)


class S3:
    def __init__(self, world: World) -> None:
        self.world = world
        self.objects: dict[str, StoredObject] = {}
        self.puts: list[str] = []  # every key written, in order (the channel's PUTs and the copier's uploads)

    def put(self, key: str, body: bytes, content_type: str) -> None:
        self.objects[key] = StoredObject(body, content_type, '"' + hashlib.md5(body).hexdigest() + '"')
        self.puts.append(key)

    @staticmethod
    def key_of(url: str) -> str:
        return urlsplit(url).path.lstrip("/")

    # ---- the client ---------------------------------------------------------------------------------
    def _step(self, operation: str, key: str, kinds: tuple[str, ...]) -> str | None:
        fault = self.world.step(f"s3 {operation} {key.rsplit('/', 1)[-1]}", "s3", kinds, latency_s=0.02)
        if fault == "slowdown":
            raise _error("SlowDown", 503, operation)
        return fault

    def generate_presigned_url(self, operation: str, Params: dict[str, Any], ExpiresIn: int, **_: Any) -> str:
        return f"https://{Params['Bucket']}.s3.sim/{Params['Key']}?op={operation}&X-Amz-Expires={ExpiresIn}"

    def head_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        self._step("HeadObject", Key, ("slowdown",))
        stored = self.objects.get(Key)
        if stored is None:
            raise _error("404", 404, "HeadObject")
        return {"ContentLength": len(stored.body), "ContentType": stored.content_type, "ETag": stored.etag}

    def list_objects_v2(self, *, Bucket: str, Prefix: str, **_: Any) -> dict[str, Any]:
        self._step("ListObjectsV2", Prefix, ("slowdown",))
        return {"Contents": [{"Key": k} for k in sorted(self.objects) if k.startswith(Prefix)]}

    def get_object(self, *, Bucket: str, Key: str, IfMatch: str | None = None) -> dict[str, Any]:
        fault = self._step("GetObject", Key, ("slowdown", "broken"))
        stored = self.objects.get(Key)
        if stored is None:
            raise _error("NoSuchKey", 404, "GetObject")
        if IfMatch and IfMatch != stored.etag:
            raise _error("PreconditionFailed", 412, "GetObject")
        return {"Body": _Body(stored.body, fault == "broken"), "ContentType": stored.content_type}

    def upload_fileobj(self, Fileobj: Any, Bucket: str, Key: str, ExtraArgs: dict[str, Any], **_: Any) -> None:
        fault = self._step("PutObject", Key, ("slowdown", "lost"))
        chunks = []
        while chunk := Fileobj.read(8 * 1024 * 1024):
            chunks.append(chunk)
        self.put(Key, b"".join(chunks), str(ExtraArgs.get("ContentType", "")))
        if fault == "lost":
            raise ReadTimeoutError(endpoint_url=f"https://{Bucket}.s3.sim")
