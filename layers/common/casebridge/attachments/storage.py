"""Where attachments live: the stack's S3 bucket, the keys, the record vocabulary, and the API precondition."""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any, Protocol, cast

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError
from botocore.response import StreamingBody

from casebridge import aws
from casebridge.attachments.errors import AttachmentStorageBusy, AttachmentStorageError
from casebridge.contact_center.base import CHAT_GATEWAY_V1
from casebridge.errors import ConfigurationError, UnsupportedByContactCenterApi
from casebridge.services import Services

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

OUTBOUND = "outbound"
INBOUND = "inbound"
AWAITING_UPLOAD = "awaiting_upload"
PENDING = "pending"
READY = "ready"
FAILED = "failed"

# Bounded memory while copying: S3 gets the file in parts of this size, one at a time (no parallel parts).
_PART_BYTES = 8 * 1024 * 1024
_TRANSFER = TransferConfig(
    multipart_threshold=_PART_BYTES, multipart_chunksize=_PART_BYTES, max_concurrency=1, use_threads=False
)


_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})
_REFUSED = frozenset({"403", "AccessDenied", "Forbidden"})
# What S3 answers when a later call may succeed (botocore's own retries already spent).
_TRANSIENT = frozenset(
    {
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequests",
        "RequestThrottled",
    }
)


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code") or "")


def is_transient(error: ClientError) -> bool:
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return _code(error) in _TRANSIENT or status >= 500 or status == 429


class Readable(Protocol):
    def read(self, amt: int | None = None, /) -> bytes: ...


def require_gateway(services: Services, what: str) -> None:
    """A 400 at request time, before anything is accepted, when the configured 8x8 API cannot do `what`."""
    api = services.contact_center.api
    if api != CHAT_GATEWAY_V1:
        raise UnsupportedByContactCenterApi(
            f"{what} need the Chat Gateway (EightByEightApi=chat-gateway-v1); the configured 8x8 API is {api}"
        )


# ---- S3 ---------------------------------------------------------------------------------------------------------
def outbound_key(case_id: str, attachment_id: str) -> str:
    return f"cases/{case_id}/{OUTBOUND}/{attachment_id}"


def inbound_key(case_id: str, attachment_id: str) -> str:
    return f"cases/{case_id}/{INBOUND}/{attachment_id}"


def content_disposition(file_name: str) -> str:
    """attachment; filename="ascii fallback"; filename*=UTF-8''percent-encoded (RFC 6266)."""
    from urllib.parse import quote  # noqa: PLC0415 - only on download

    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in file_name) or "file"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(file_name, safe='')}"


class AttachmentBucket:
    """The stack's attachment bucket (aws.s3_client signs its pre-signed URLs with SigV4)."""

    client = aws.InjectableClient(aws.s3_client)

    def __init__(self, name: str, client: S3Client | None = None) -> None:
        self.name = name
        self.client = client

    def upload_url(self, key: str, content_type: str, size: int, expires_in: int) -> str:
        # ContentType and ContentLength become signed headers: S3 refuses a PUT with any other type or size.
        return self.client.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.name, "Key": key, "ContentType": content_type, "ContentLength": size},
            ExpiresIn=expires_in,
            HttpMethod="PUT",
        )

    def download_url(self, key: str, file_name: str, content_type: str, expires_in: int) -> str:
        return self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.name,
                "Key": key,
                "ResponseContentDisposition": content_disposition(file_name),
                "ResponseContentType": content_type,
            },
            ExpiresIn=expires_in,
        )

    def head(self, key: str) -> dict[str, Any] | None:
        """The object's metadata, or None when there is no object. AttachmentStorageBusy: S3 is throttling or
        failing for now. A 403 is what S3 answers for a missing key when the caller may not list it: the listing
        (s3:ListBucket granted on the outbound prefix only, template.yaml) tells a missing key from a refusal."""
        try:
            answer = self.client.head_object(Bucket=self.name, Key=key)
        except ClientError as error:
            if _code(error) in _MISSING:
                return None
            if _code(error) in _REFUSED and not self._listed(key):
                return None
            if is_transient(error):
                raise AttachmentStorageBusy("the attachment bucket is busy; retry shortly", retry_after=1) from error
            raise
        except BotoCoreError as error:
            raise AttachmentStorageBusy(
                "the attachment bucket could not be reached; retry shortly", retry_after=1
            ) from error
        return dict(answer)

    def _listed(self, key: str) -> bool:
        try:
            found = self.client.list_objects_v2(Bucket=self.name, Prefix=key, MaxKeys=1).get("Contents", [])
        except ClientError:
            return True  # not allowed to list either: a refusal, not an answer about the key
        return any(item.get("Key") == key for item in found)

    def open(self, key: str, etag: str | None) -> ObjectStream:
        """The object's streaming body (read as 8x8's upload reads it, never whole in a variable here)."""
        params: dict[str, Any] = {"Bucket": self.name, "Key": key}
        if etag:
            params["IfMatch"] = etag
        try:
            body = self.client.get_object(**params)["Body"]
        except ClientError as error:
            code = _code(error)
            if code in _MISSING:
                raise AttachmentStorageError(
                    "the attachment is no longer in the bucket (expired?); the message cannot be sent", retryable=False
                ) from error
            if code in ("412", "PreconditionFailed"):
                raise AttachmentStorageError(
                    "the attachment was replaced after the message was accepted; the message is not sent",
                    retryable=False,
                ) from error
            # Transient (SlowDown, 5xx, throttling) goes through the delivery's retries; a refusal is the stack's.
            raise AttachmentStorageError(
                f"the attachment could not be read from the bucket ({code})", retryable=is_transient(error)
            ) from error
        except BotoCoreError as error:  # connection dropped, timed out: nothing reached 8x8, retry
            raise AttachmentStorageError("the attachment could not be read from the bucket", retryable=True) from error
        return ObjectStream(body)

    def put_stream(self, key: str, stream: Readable, content_type: str, file_name: str) -> None:
        """Stream into the bucket: parts of 8 MiB, one at a time (a small file is one PUT)."""
        self.client.upload_fileobj(
            cast("IO[Any]", stream),
            self.name,
            key,
            ExtraArgs={"ContentType": content_type, "ContentDisposition": content_disposition(file_name)},
            Config=_TRANSFER,
        )


def bucket(services: Services) -> AttachmentBucket:
    """The bucket of these services (one client per container, like the other AWS clients)."""
    name = services.settings.attachments_bucket_name
    if not name:
        raise ConfigurationError("ATTACHMENTS_BUCKET_NAME is not configured (the stack's attachment bucket)")
    cached = vars(services).get("_attachment_bucket")
    if not isinstance(cached, AttachmentBucket) or cached.name != name:
        cached = AttachmentBucket(name)
        vars(services)["_attachment_bucket"] = cached
    return cached


class ObjectStream:
    """The object's body, whose read errors (S3 dropping the stream while 8x8's upload reads it) are the
    delivery's retryable AttachmentStorageError, not an unexpected error: nothing of it reached 8x8 as a message."""

    def __init__(self, body: StreamingBody) -> None:
        self._body = body

    def read(self, amt: int | None = None) -> bytes:
        try:
            return self._body.read(amt)
        except (BotoCoreError, OSError) as error:
            raise AttachmentStorageError("the attachment's stream from the bucket broke off", retryable=True) from error

    def close(self) -> None:
        self._body.close()
