"""HTTP to 8x8: one session per container, a timeout on every call, and 8x8's answers mapped to our errors.

No retries here: outbound retries live in one layer only (the outbound queue), see casebridge.messages.
Which error class an answer becomes decides the status the business sees (errors.py):
429/5xx/network → ContactCenterUnavailable (503, retryable); the caller's own values refused → ContactCenterRejected
(422); the stack's configuration refused (API key, tenant, channel) → ContactCenterMisconfigured (500);
anything else → ContactCenterError (502).
"""

from __future__ import annotations

import ipaddress
import math
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from urllib3.util.ssl_match_hostname import CertificateError

from casebridge.clock import wall_time
from casebridge.contact_center.base import CHAT_GATEWAY_V1, ContactCenterApi
from casebridge.errors import (
    ConfigurationError,
    ContactCenterAuthError,
    ContactCenterError,
    ContactCenterMisconfigured,
    ContactCenterRejected,
    ContactCenterUnavailable,
)

_DIGITS = re.compile(r"[0-9]{1,9}")  # ASCII only: "²".isdigit() is True and int("²") fails
_MAX_TEXT = 300  # 8x8's messages are echoed to the caller; keep them short
# Fields whose value comes from the stack's configuration, not from the business's request.
CONFIG_FIELDS = frozenset({"channelid", "channel", "webhookid"})


class CredentialedSession(requests.Session):
    """A session for calls that carry 8x8's credentials (x-api-key and X-8x8-Tenant, a bearer token, the token
    request's basic auth). It never follows a redirect: requests keeps custom headers on a redirect to any host
    (even over http://), and only the configured 8x8 base URL may see them. A 3xx comes back as the answer."""

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        return None


def new_session() -> requests.Session:
    session = CredentialedSession()
    session.headers["User-Agent"] = "casebridge/0.1"
    return session


def require_safe_base_url(base_url: str) -> str:
    """The base URL without its trailing slash; refuses cleartext http:// except to this machine (local stack,
    emulator, tests), since every call carries the API key or token and the signing keys come from there."""
    try:
        parts = urlsplit(base_url.strip())
        host = (parts.hostname or "").lower()
    except ValueError as error:
        raise ConfigurationError(f"the 8x8 base URL {base_url!r} is not a URL") from error
    if not host:
        raise ConfigurationError(f"the 8x8 base URL {base_url!r} names no host")
    if parts.scheme == "https":
        return base_url.strip().rstrip("/")
    if parts.scheme == "http" and _is_loopback(host):
        return base_url.strip().rstrip("/")
    raise ConfigurationError(
        f"the 8x8 base URL {base_url!r} must use https:// (http:// only to this machine: localhost, 127.0.0.1, "
        "::1, host.docker.internal): credentials and webhook signing keys must not travel in cleartext"
    )


def _is_loopback(host: str) -> bool:
    # host.docker.internal: the developer's own machine seen from `sam local`'s container (events/env.json).
    if host in ("localhost", "host.docker.internal") or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def jwk_url_for(api: ContactCenterApi, base_url: str, region: str) -> str:
    """URL template of the key that signs webhook deliveries; format it with kid= (already URL-quoted).
    The Gateway's is its own path (GATEWAY.md §3.4; its code samples wrongly show v2's, trap T6)."""
    base = require_safe_base_url(base_url)
    if api == CHAT_GATEWAY_V1:
        return base + "/chat-gateway/v1/jwk/{kid}/public"
    return base + f"/vcc/{region}/chat/v2/jwk/" + "{kid}/public"


# ---- 8x8's answers ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorAnswer:
    """What an 8x8 error body says, whatever its shape; `details` are 8x8's per-field messages."""

    code: str | None = None
    message: str | None = None
    reference_id: str | None = None
    details: list[dict[str, str]] = field(default_factory=list)

    def config_fields(self) -> list[str]:
        """Fields named in the details (or, lacking fields, in the messages) that the stack configures."""
        named = [d["field"] for d in self.details if d.get("field", "").lower() in CONFIG_FIELDS]
        if named or any(d.get("field") for d in self.details):
            return named
        texts = [self.message or "", self.code or "", *(d.get("message", "") + d.get("code", "") for d in self.details)]
        return ["channelId"] if any(re.search(r"channel", t, re.IGNORECASE) for t in texts) else []


def _text(value: Any) -> str | None:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value).strip():
        return str(value).strip()[:_MAX_TEXT]
    return None


def _detail(item: Any) -> dict[str, str] | None:
    if isinstance(item, str):
        text = _text(item)
        return {"message": text} if text else None
    if not isinstance(item, dict):
        return None
    # v2 validations carry the refused `value` too; it is the caller's own data, so it is not echoed back.
    detail = {key: text for key in ("field", "code", "message") if (text := _text(item.get(key)))}
    return detail or None


def parse_error(response: requests.Response) -> ErrorAnswer:
    """Every shape in GATEWAY.md §1 and CONTRACT.md: {message, errors:[{code, message}] | [str] | {code, message}},
    v2's {validations:[{field, code, message}]}, Apigee's {fault:{faultstring, detail:{errorcode}}}, {ErrorCode}.
    Never raises: a body it cannot read gives an empty ErrorAnswer."""
    try:
        body: Any = response.json()
    except ValueError:
        return ErrorAnswer()
    try:
        return _parse_error_body(body)
    except Exception:  # an odd error body must never hide the status it came with
        return ErrorAnswer()


def _parse_error_body(body: Any) -> ErrorAnswer:
    if not isinstance(body, dict):
        return ErrorAnswer(message=_text(body))
    details: list[dict[str, str]] = []
    errors = body.get("errors")
    for item in errors if isinstance(errors, list) else [errors]:
        if (detail := _detail(item)) is not None:
            details.append(detail)
    validations = body.get("validations")
    for item in validations if isinstance(validations, list) else []:
        if (detail := _detail(item)) is not None:
            details.append(detail)
    code = next((d["code"] for d in details if "code" in d), None)
    message = _text(body.get("message")) or _text(body.get("detail")) or _text(body.get("title"))
    fault = body.get("fault")
    if isinstance(fault, dict):
        message = message or _text(fault.get("faultstring"))
        fault_detail = fault.get("detail")
        if isinstance(fault_detail, dict):
            code = code or _text(fault_detail.get("errorcode"))
    for key in ("ErrorCode", "instance", "code"):
        code = code or _text(body.get(key))
    message = message or _text(body.get("Message"))
    return ErrorAnswer(code=code, message=message, reference_id=_text(body.get("referenceId")), details=details)


def retry_after_seconds(response: requests.Response, *, clock: Callable[[], float] = wall_time) -> int | None:
    """Retry-After as delta-seconds (ASCII digits only) or an HTTP-date; anything else is ignored."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if _DIGITS.fullmatch(value):
        return int(value)
    if not value.isascii():
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a date without a zone is not one
        return None
    return max(0, math.ceil(when.timestamp() - clock()))


def proves_nothing_done(status: int, answer: ErrorAnswer) -> bool:
    """Whether an error answer shows that 8x8 did not act on the request. A 502/503/504 comes from an edge or
    proxy (the work behind it may have run), a 5xx without 8x8's problem body from who knows what; 429 and 4xx
    are refusals before any work."""
    if status in (502, 503, 504):
        return False
    if status >= 500:
        return bool(answer.code or answer.message or answer.details)
    return True


def raise_for_status(
    response: requests.Response,
    operation: str,
    *,
    caller_input: bool = False,
    not_found: type[ContactCenterError] = ContactCenterError,
    unauthorized: type[ContactCenterError] = ContactCenterAuthError,
    creates: bool = False,
) -> None:
    """caller_input: the request carries the business's values, so 8x8 refusing them is the caller's 422.
    not_found: what a 404 means for this operation (an unknown channel on create is our configuration).
    unauthorized: v2 refreshes its token on ContactCenterAuthError; the Gateway's API key cannot be refreshed.
    creates: the request makes something 8x8 has no idempotency key for (a conversation, a message); an answer
    that does not prove nothing was made is ambiguous (an opener looks the conversation up before creating again,
    the sender counts a possible duplicate)."""
    status = response.status_code
    if 300 <= status < 400:
        # Not followed (see CredentialedSession): the answer is not 8x8's, so nothing was done.
        raise ContactCenterError(
            f"8x8 answered {operation} with a redirect ({status}); not followed: credentials only go to the "
            "configured 8x8 base URL (check EightByEightBaseUrl)",
            upstream_status=status,
        )
    if status < 400:
        return
    answer = parse_error(response)
    said = f": {answer.message}" if answer.message else ""
    ref = f" (8x8 reference {answer.reference_id})" if answer.reference_id else ""
    common: dict[str, Any] = {"upstream_status": status, "upstream_code": answer.code}
    details = answer.details or None
    if status == 429 or status >= 500 or status == 408:
        raise ContactCenterUnavailable(
            f"8x8 is unavailable for {operation} ({status}){said}{ref}",
            retry_after=retry_after_seconds(response),
            ambiguous=creates and not proves_nothing_done(status, answer),
            **common,
        )
    if status == 401:
        raise unauthorized(f"8x8 refused the credentials for {operation} (401){said}{ref}", **common)
    if status == 403:
        raise ContactCenterMisconfigured(
            f"8x8 refused {operation} (403): check the API key's products and the tenant id{said}{ref}",
            details=details,
            **common,
        )
    config_fields = answer.config_fields() if status in (400, 422) else []
    if config_fields:
        raise ContactCenterMisconfigured(
            f"8x8 refused the configured {', '.join(config_fields)} for {operation} ({status}){said}{ref}",
            details=details,
            **common,
        )
    if status == 404:
        raise not_found(f"8x8 found nothing for {operation} (404){said}{ref}", details=details, **common)
    if status in (409, 422) or (caller_input and status in (400, 413, 415)):
        raise ContactCenterRejected(
            f"8x8 refused the request's values for {operation} ({status}){said}{ref}", details=details, **common
        )
    raise ContactCenterError(f"8x8 answered {status} to {operation}{said}{ref}", details=details, **common)


def request(
    session: requests.Session,
    method: str,
    url: str,
    operation: str,
    timeout: float,
    *,
    caller_input: bool = False,
    not_found: type[ContactCenterError] = ContactCenterError,
    unauthorized: type[ContactCenterError] = ContactCenterAuthError,
    creates: bool = False,
    **kwargs: Any,
) -> requests.Response:
    """One HTTP call; network failures become ContactCenterUnavailable, marked ambiguous when the request
    may have reached 8x8 (read timeout, connection dropped after sending, any TLS failure but a refused
    certificate)."""
    try:
        # Never a redirect, whatever session was given: the request carries 8x8's credentials.
        kwargs["allow_redirects"] = False
        response = session.request(method, url, timeout=(min(timeout, 3.05), timeout), **kwargs)
    except requests.ConnectTimeout as error:
        raise ContactCenterUnavailable(f"8x8 unreachable for {operation}: connect timeout") from error
    except requests.ReadTimeout as error:
        raise ContactCenterUnavailable(f"8x8 did not answer {operation} in {timeout:g}s", ambiguous=True) from error
    except requests.exceptions.SSLError as error:
        # Only a refused certificate proves the request was never sent; any other TLS failure may come after it
        # (a broken record in the answer, a TLS 1.3 alert read after the request went out).
        raise ContactCenterUnavailable(
            f"TLS to 8x8 failed for {operation}", ambiguous=not _certificate_refused(error)
        ) from error
    except requests.ConnectionError as error:
        refused = "NewConnectionError" in repr(error) or "Connection refused" in str(error)
        raise ContactCenterUnavailable(f"connection to 8x8 failed during {operation}", ambiguous=not refused) from error
    except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as error:
        raise ContactCenterUnavailable(f"8x8's answer to {operation} broke off", ambiguous=True) from error
    except requests.RequestException as error:  # invalid URL, redirect loop: nothing 8x8 acted on
        raise ContactCenterError(f"the call to 8x8 for {operation} could not be made: {error}") from error
    raise_for_status(
        response, operation, caller_input=caller_input, not_found=not_found, unauthorized=unauthorized, creates=creates
    )
    return response


def _certificate_refused(error: BaseException) -> bool:
    """Whether the failure is our refusal of the server's certificate (not trusted, another host's). The client
    checks it during the handshake, before its Finished message: nothing of the request has been sent. urllib3
    wraps a handshake failure and a failure reading the answer alike, so the cause is looked for down the chain
    of wrapped errors (args, MaxRetryError.reason, `raise ... from`)."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, (ssl.SSLCertVerificationError, CertificateError)):
            return True
        linked = (current.__cause__, getattr(current, "reason", None), *current.args)
        pending.extend(item for item in linked if isinstance(item, BaseException))
    return False


def json_body(response: requests.Response) -> Any:
    """The body as JSON whatever its content type (application/hal+json, application/json, none); None if not JSON."""
    try:
        return response.json()
    except ValueError:
        return None
