"""Domain errors. Each carries its HTTP status and a stable code; business_api.http maps them in one place."""

from __future__ import annotations

from typing import Any


class CasebridgeError(Exception):
    status_code = 500
    code = "InternalError"

    def __init__(self, message: str, *, details: Any = None, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"error": error}


class ConfigurationError(CasebridgeError):
    """The function's environment is missing or invalid: our fault, never the caller's (500, not 400)."""

    status_code = 500
    code = "ConfigurationError"


class InvalidRequest(CasebridgeError):
    status_code = 400
    code = "InvalidRequest"


class Unauthorized(CasebridgeError):
    status_code = 401
    code = "Unauthorized"


class CaseNotFound(CasebridgeError):
    status_code = 404
    code = "CaseNotFound"


class Conflict(CasebridgeError):
    """Another request is doing the same work right now; the caller may retry shortly."""

    status_code = 409
    code = "Conflict"


class StoreBusy(CasebridgeError):
    """DynamoDB throttled or a transaction collided: nothing was written, the caller may retry (503)."""

    status_code = 503
    code = "ServiceBusy"


class ReusedClientMessageId(CasebridgeError):
    """A clientMessageId came back with another text: the same idempotency key for a different message."""

    status_code = 409
    code = "ClientMessageIdReused"


class PayloadTooLarge(CasebridgeError):
    status_code = 413
    code = "PayloadTooLarge"


class UnsupportedByContactCenterApi(CasebridgeError):
    """The request needs something the configured 8x8 API cannot do (e.g. routing or typing on Chat API v2)."""

    status_code = 400
    code = "UnsupportedByContactCenterApi"


class ContactCenterError(CasebridgeError):
    """8x8 answered with an error or could not be reached; retrying will not help (502)."""

    status_code = 502
    code = "ContactCenterError"
    default_retryable = False

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int | None = None,
        upstream_code: str | None = None,
        retryable: bool | None = None,
        retry_after: int | None = None,
        ambiguous: bool = False,
        details: Any = None,
    ) -> None:
        super().__init__(message, retry_after=retry_after, details=details)
        self.upstream_status = upstream_status
        self.upstream_code = upstream_code
        self.retryable = self.default_retryable if retryable is None else retryable
        self.ambiguous = ambiguous

    def body(self) -> dict[str, Any]:
        body = super().body()
        body["error"]["upstream"] = {"status": self.upstream_status, "code": self.upstream_code}
        return body


class ContactCenterUnavailable(ContactCenterError):
    """8x8 failed in a way a later attempt may fix (5xx, 429, network): 503 with Retry-After where known."""

    status_code = 503
    code = "ContactCenterUnavailable"
    default_retryable = True


class ContactCenterRejected(ContactCenterError):
    """8x8 refused a value that came from the caller's request (422, with 8x8's validation message)."""

    status_code = 422
    code = "RejectedByContactCenter"


class UnknownChannel(ContactCenterRejected):
    """8x8 does not know a channelId the caller gave (the caller's value, so 422; the stack's own channel refused
    stays ContactCenterMisconfigured)."""

    code = "UnknownChannel"


class ContactCenterMisconfigured(ContactCenterError):
    """8x8 refused the stack's own configuration (API key, tenant, channel, queue): an operator must act (500)."""

    status_code = 500
    code = "ContactCenterMisconfigured"


class ContactCenterAuthError(ContactCenterError):
    """8x8 refused our token: refresh once, then give up."""


class SigningKeyUnavailable(CasebridgeError):
    """The webhook's key could not be fetched: answer 5xx so 8x8 retries (never 401)."""

    status_code = 503
    code = "SigningKeyUnavailable"
