"""The few REST calls provisioning makes to 8x8, with auth, a deadline and 8x8's answers turned into text."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from casebridge.contact_center.http import new_session
from casebridge.provisioning.credentials import GATEWAY, V2, Credentials, ProvisioningError

EVENT_VERSION = {GATEWAY: "Chat Gateway v1.0", V2: "v2.0"}
_PAGE_SIZE = 50
_MAX_PAGES = 40  # 2,000 webhooks or channels: far more than a tenant has; bounds a misbehaving paging answer
_IDEMPOTENT = ("GET", "PUT", "DELETE")


def _detail(body: Any) -> str:
    """8x8's own words from any of its error shapes (problem+json, v2 validations, Apigee faults, OAuth)."""
    if not isinstance(body, Mapping):
        return ""
    parts: list[str] = []
    for item in body.get("validations") or []:
        if isinstance(item, Mapping):
            parts.append(f"{item.get('field', '')}: {item.get('message', '')}".strip(": "))
    errors = body.get("errors")
    for item in errors if isinstance(errors, list) else [errors] if errors else []:
        if isinstance(item, Mapping):
            parts.append(str(item.get("message") or item.get("code") or ""))
        else:
            parts.append(str(item))
    fault = body.get("fault")
    if isinstance(fault, Mapping):
        parts.append(str(fault.get("faultstring", "")))
    for key in ("detail", "Error", "message", "title"):
        if not parts and body.get(key):
            parts.append(str(body[key]))
    kept: list[str] = []
    for part in parts:  # v2 repeats a validation's message in `errors`
        if part and not any(part in earlier for earlier in kept):
            kept.append(part)
    return "; ".join(kept)[:120]


@dataclass(frozen=True)
class Place:
    """Where the webhook and channel live, and how to reach it."""

    api: str
    base_url: str
    tenant_id: str
    region: str
    credentials: Credentials
    timeout: float = 10.0
    deadline: float | None = None  # time.monotonic() by which every call must have ended

    @property
    def prefix(self) -> str:
        if self.api == GATEWAY:
            return "/chat-gateway/v1"
        return f"/vcc/{self.region}/chat/v2/tenant/{self.tenant_id}"

    @property
    def webhooks_path(self) -> str:
        return f"{self.prefix}/webhooks" if self.api == GATEWAY else f"{self.prefix}/web-hooks"

    @property
    def channels_path(self) -> str:
        return f"{self.prefix}/channels"


@dataclass
class _Client:
    """The few REST calls provisioning needs, with auth, a deadline and 8x8's answers turned into actionable text."""

    place: Place
    session: requests.Session = field(default_factory=new_session)  # follows no redirect with the credentials
    _token: str = ""

    def _timeout(self) -> float:
        if self.place.deadline is None:
            return self.place.timeout
        left = self.place.deadline - time.monotonic()
        if left < 1.0:
            raise ProvisioningError(
                "8x8 did not finish answering in the time CloudFormation allows; deploy again "
                "(what was already made is adopted, not duplicated)"
            )
        return min(self.place.timeout, left)

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.place.api == GATEWAY:
            headers["x-api-key"] = self.place.credentials.api_key
            headers["X-8x8-Tenant"] = self.place.tenant_id
        else:
            headers["Authorization"] = f"Bearer {self._access_token()}"
        return headers

    def _access_token(self) -> str:
        if self._token:
            return self._token
        creds = self.place.credentials
        url = f"{self.place.base_url}/oauth/v2/token"
        try:
            answer = self.session.post(
                url,
                data={"grant_type": "client_credentials"},
                auth=(creds.api_key, creds.api_secret),
                timeout=self._timeout(),
            )
        except requests.RequestException as error:
            raise self._unreachable(error) from None
        body = _json(answer)
        if answer.status_code in (400, 401, 403):
            raise ProvisioningError(
                f"8x8 refused the API key and secret ({answer.status_code}): check apiKey and apiSecret "
                f"in {creds.source}"
            )
        token = body.get("access_token") if isinstance(body, Mapping) else None
        if answer.status_code != 200 or not isinstance(token, str) or not token:
            raise ProvisioningError(
                f"8x8's token endpoint answered {answer.status_code} without a token; deploy again later"
            )
        self._token = token
        return token

    def _unreachable(self, error: Exception) -> ProvisioningError:
        return ProvisioningError(
            f"cannot reach 8x8 at {self.place.base_url} ({type(error).__name__}): check EightByEightBaseUrl"
        )

    def call(self, method: str, path: str, what: str, body: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        """One call; 404 comes back as None (callers decide what a missing resource means)."""
        attempts = 3 if method in _IDEMPOTENT else 1
        for attempt in range(1, attempts + 1):
            try:
                answer = self.session.request(
                    method,
                    f"{self.place.base_url}{path}",
                    json=body,
                    params=params,
                    headers=self._headers(),
                    timeout=self._timeout(),
                )
            except requests.RequestException as error:
                if attempt < attempts:
                    continue
                raise self._unreachable(error) from None
            status = answer.status_code
            if status == 404:
                return None
            if 200 <= status < 300:
                return _json(answer) if answer.content else {}
            if (status == 429 or status >= 500) and attempt < attempts:
                time.sleep(min(0.5 * attempt, max(0.0, self._timeout() - 1.0)))
                continue
            raise self._refused(status, _detail(_json(answer)), what)
        raise AssertionError("unreachable")  # pragma: no cover

    def _refused(self, status: int, detail: str, what: str) -> ProvisioningError:
        said = f"{status}: {detail}" if detail else str(status)
        place = self.place
        if status == 401:
            if place.api == V2:
                self._token = ""
                return ProvisioningError(f"8x8 refused the access token (401) {what}: check {place.credentials.source}")
            return ProvisioningError(f"8x8 refused the API key (401): check the apiKey in {place.credentials.source}")
        if status == 403:
            return ProvisioningError(
                f"8x8 refused access {what} ({said}): check EightByEightTenantId ({place.tenant_id}) "
                "and that the API key belongs to that tenant"
            )
        if status == 429 or status >= 500:
            return ProvisioningError(f"8x8 failed {what} ({said}); deploy again later")
        return ProvisioningError(f"8x8 refused {what} ({said})")

    def list_all(self, path: str, key: str, what: str) -> Iterator[Mapping[str, Any]]:
        """Every item of a paged list (Gateway HAL `_embedded.<key>` + `page.totalPages`; v2 `data` + `pageCount`)."""
        for page in range(_MAX_PAGES):
            body = self.call("GET", path, what, params={"page": page, "size": _PAGE_SIZE})
            if not isinstance(body, Mapping):
                return
            if self.place.api == GATEWAY:
                embedded = body.get("_embedded")
                items = embedded.get(key) if isinstance(embedded, Mapping) else None
                pages = (body.get("page") or {}).get("totalPages", 1)
            else:
                items = body.get("data")
                pages = (body.get("page") or {}).get("pageCount", 1)
            yield from (i for i in items or [] if isinstance(i, Mapping))
            if not items or page + 1 >= int(pages or 1):
                return


def _json(answer: requests.Response) -> Any:
    try:
        return answer.json()
    except ValueError:
        return None


def _webhook_body(api: str, name: str, uri: str) -> dict[str, str]:
    body = {"name": name, "uri": uri, "notificationVersion": EVENT_VERSION[api]}
    if api == GATEWAY:
        body["version"] = EVENT_VERSION[api]  # the Gateway OAS requires one key and defines the other (trap T1)
    return body


def _channel_body(name: str, webhook_id: str, queue_id: str) -> dict[str, Any]:
    return {"name": name, "webHookId": webhook_id, "routingOptions": {"type": "queue", "id": queue_id}}


def _queue_of(channel: Mapping[str, Any]) -> str:
    routing = channel.get("routingOptions")
    return str(routing.get("id", "")) if isinstance(routing, Mapping) else ""


def _id(found: Any, what: str) -> str:
    value = found.get("id") if isinstance(found, Mapping) else None
    if value is None or value == "":
        raise ProvisioningError(f"8x8 answered {what} without an id; deploy again later")
    return str(value)
