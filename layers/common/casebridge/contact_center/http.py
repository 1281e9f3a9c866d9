"""HTTP to 8x8: one session per container, a timeout on every call, and 8x8's errors mapped to ours.

No retries here: outbound retries live in one layer only (the outbound queue), see casebridge.messages.
"""

from __future__ import annotations

from typing import Any

import requests

from casebridge.errors import ContactCenterAuthError, ContactCenterError


def new_session() -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = "casebridge/0.1"
    return session


def retry_after_seconds(response: requests.Response) -> int | None:
    value = response.headers.get("Retry-After", "")
    return int(value) if value.isdigit() else None


def upstream_code(response: requests.Response) -> str | None:
    """8x8 answers errors in several shapes: {errors:[{code}]}, {fault:{detail:{errorcode}}}, {ErrorCode}."""
    try:
        body: Any = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict) and errors[0].get("code"):
        return str(errors[0]["code"])
    fault = body.get("fault")
    if isinstance(fault, dict):
        detail = fault.get("detail")
        if isinstance(detail, dict) and detail.get("errorcode"):
            return str(detail["errorcode"])
    for key in ("ErrorCode", "instance", "code"):
        if body.get(key):
            return str(body[key])
    return None


def raise_for_status(response: requests.Response, operation: str) -> None:
    status = response.status_code
    if status < 400:
        return
    code = upstream_code(response)
    message = f"8x8 answered {status} to {operation}"
    if status == 401:
        raise ContactCenterAuthError(message, upstream_status=status, upstream_code=code)
    retryable = status == 429 or status >= 500
    raise ContactCenterError(
        message,
        upstream_status=status,
        upstream_code=code,
        retryable=retryable,
        retry_after=retry_after_seconds(response),
    )


def request(
    session: requests.Session, method: str, url: str, operation: str, timeout: float, **kwargs: Any
) -> requests.Response:
    """One HTTP call; network failures become retryable ContactCenterErrors, marked ambiguous when
    the request may have reached 8x8 (read timeout, connection dropped mid-answer)."""
    try:
        response = session.request(method, url, timeout=(min(timeout, 3.05), timeout), **kwargs)
    except requests.ConnectTimeout as error:
        raise ContactCenterError(f"8x8 unreachable for {operation}: connect timeout", retryable=True) from error
    except requests.ReadTimeout as error:
        raise ContactCenterError(
            f"8x8 did not answer {operation} in {timeout:g}s", retryable=True, ambiguous=True
        ) from error
    except requests.ConnectionError as error:
        refused = "NewConnectionError" in repr(error) or "Connection refused" in str(error)
        raise ContactCenterError(
            f"connection to 8x8 failed during {operation}", retryable=True, ambiguous=not refused
        ) from error
    raise_for_status(response, operation)
    return response
