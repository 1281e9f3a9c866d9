"""Domain errors. Each carries its HTTP status and a stable code; casebridge.api maps them in one place."""

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


class PayloadTooLarge(CasebridgeError):
    status_code = 413
    code = "PayloadTooLarge"


class ContactCenterError(CasebridgeError):
    """8x8 answered with an error or could not be reached."""

    status_code = 502
    code = "ContactCenterError"

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int | None = None,
        upstream_code: str | None = None,
        retryable: bool = False,
        retry_after: int | None = None,
        ambiguous: bool = False,
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.upstream_status = upstream_status
        self.upstream_code = upstream_code
        self.retryable = retryable
        self.ambiguous = ambiguous
        if retryable:
            self.status_code = 503
            self.code = "ContactCenterUnavailable"

    def body(self) -> dict[str, Any]:
        body = super().body()
        body["error"]["upstream"] = {"status": self.upstream_status, "code": self.upstream_code}
        return body


class ContactCenterAuthError(ContactCenterError):
    """8x8 refused our token: refresh once, then give up."""


class SigningKeyUnavailable(CasebridgeError):
    """The webhook's key could not be fetched: answer 5xx so 8x8 retries (never 401)."""

    status_code = 503
    code = "SigningKeyUnavailable"
