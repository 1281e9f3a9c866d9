"""The stack's 8x8 side: the webhook 8x8 posts events to, and the channel that binds it to a queue.

Used by the CloudFormation custom resource (functions/provisioner) and by the local stack. Every call is safe to
repeat: a webhook with the same name and URI, or a channel with the same name on that webhook, is adopted instead
of made twice, and deleting what is already gone succeeds. Every failure is a ProvisioningError whose message
says what to fix (CloudFormation shows it as the resource's status reason, at most 256 characters).

Both APIs:
  Chat Gateway v1  {base}/chat-gateway/v1/webhooks|channels, `x-api-key` + `X-8x8-Tenant`, HAL lists
                   (`_embedded.webhooks`, `page.totalPages`)
  Chat API v2      {base}/vcc/{region}/chat/v2/tenant/{tenant}/web-hooks|channels, OAuth bearer token from
                   POST /oauth/v2/token, lists `data` + `page.pageCount`
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from casebridge.observability import logger

GATEWAY = "chat-gateway-v1"
V2 = "chat-api-v2"
APIS = (GATEWAY, V2)
EVENT_VERSION = {GATEWAY: "Chat Gateway v1.0", V2: "v2.0"}
PHYSICAL_ID_PREFIX = "8x8-webhook-channel:"
_PAGE_SIZE = 50
_MAX_PAGES = 40  # 2,000 webhooks or channels: far more than a tenant has; bounds a misbehaving paging answer
_IDEMPOTENT = ("GET", "PUT", "DELETE")


class ProvisioningError(Exception):
    """A failure a person can act on; the message names what to check."""


@dataclass(frozen=True)
class Credentials:
    api_key: str
    api_secret: str = ""
    source: str = "the credentials secret"  # named in error messages (the secret's ARN)


def parse_credentials(api: str, values: Mapping[str, Any] | str | bytes, source: str = "") -> Credentials:
    """The secret's JSON: {"apiKey"} for the Gateway, {"apiKey", "apiSecret"} for v2. A missing key is named."""
    where = source or "the credentials secret"
    check_api(api)
    if isinstance(values, str | bytes):
        try:
            values = json.loads(values)
        except ValueError:
            raise ProvisioningError(f"{where} is not JSON; store {_shape(api)}") from None
    if not isinstance(values, Mapping):
        raise ProvisioningError(f"{where} is not a JSON object; store {_shape(api)}")
    needed = ["apiKey"] + (["apiSecret"] if api == V2 else [])
    for name in needed:
        value = values.get(name)
        if not isinstance(value, str) or not value.strip():
            raise ProvisioningError(f'{where} has no "{name}" ({api} needs {_shape(api)})')
    return Credentials(str(values["apiKey"]).strip(), str(values.get("apiSecret") or "").strip(), where)


def read_credentials(api: str, secret_id: str) -> Credentials:
    """Read the credentials secret (always fresh: a fixed secret must work on the next deploy attempt)."""
    from aws_lambda_powertools.utilities import parameters  # noqa: PLC0415 - only the custom resource reads it

    try:
        raw = parameters.get_secret(secret_id, force_fetch=True)
    except Exception as error:  # Powertools wraps every AWS error in GetParameterError
        raise ProvisioningError(
            f"cannot read the secret {secret_id} ({type(error).__name__}): check EightByEightCredentialsSecretArn"
        ) from None
    return parse_credentials(api, raw if isinstance(raw, str | bytes) else json.dumps(raw), secret_id)


def check_api(api: str) -> None:
    if api not in APIS:
        raise ProvisioningError(f"EightByEightApi {api!r} is not one of {', '.join(APIS)}")


def _shape(api: str) -> str:
    return '{"apiKey"}' if api == GATEWAY else '{"apiKey", "apiSecret"}'


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
    session: requests.Session = field(default_factory=requests.Session)
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


# ---- the operations ------------------------------------------------------------------------------------------
def _find_webhook(client: _Client, name: str, uri: str) -> str | None:
    for hook in client.list_all(client.place.webhooks_path, "webhooks", "listing webhooks"):
        if hook.get("name") == name and hook.get("uri") == uri:
            return str(hook.get("id"))
    return None


def _find_channels(client: _Client, name: str, webhook_id: str) -> list[Mapping[str, Any]]:
    return [
        c
        for c in client.list_all(client.place.channels_path, "channels", "listing channels")
        if str(c.get("webHookId")) == webhook_id and (not name or c.get("name") == name)
    ]


def _ensure(client: _Client, name: str, webhook_url: str, queue_id: str) -> tuple[str, str]:
    place = client.place
    webhook_id = _find_webhook(client, name, webhook_url)
    created_webhook = webhook_id is None
    if webhook_id is None:
        made = client.call(
            "POST",
            place.webhooks_path,
            f"the webhook {webhook_url} (is the intake answering WEB_HOOK_VERIFY? see its log group)",
            _webhook_body(place.api, name, webhook_url),
        )
        webhook_id = _id(made, "the webhook")
    try:
        existing = _find_channels(client, name, webhook_id)
        if existing:
            channel = existing[0]
            channel_id = _id(channel, "the channel")
            if _queue_of(channel) != queue_id:
                _put_channel(client, channel_id, name, webhook_id, queue_id)
        else:
            made = client.call(
                "POST",
                place.channels_path,
                f"the channel on queue {queue_id} (check EightByEightQueueId)",
                _channel_body(name, webhook_id, queue_id),
            )
            channel_id = _id(made, "the channel")
    except ProvisioningError:
        if created_webhook:
            # Leave nothing behind that a person would have to find: the retry makes it again.
            with contextlib.suppress(ProvisioningError):
                client.call("DELETE", f"{place.webhooks_path}/{webhook_id}", "deleting the webhook")
        raise
    return webhook_id, channel_id


def _put_channel(client: _Client, channel_id: str, name: str, webhook_id: str, queue_id: str) -> bool:
    found = client.call(
        "PUT",
        f"{client.place.channels_path}/{channel_id}",
        f"the channel on queue {queue_id} (check EightByEightQueueId)",
        _channel_body(name, webhook_id, queue_id),
    )
    return found is not None


def _place(
    api: str,
    base_url: str,
    tenant_id: str,
    region: str,
    credentials: Credentials | Mapping[str, Any],
    timeout: float,
    deadline: float | None,
) -> Place:
    check_api(api)
    if not isinstance(credentials, Credentials):
        credentials = parse_credentials(api, credentials)
    return Place(api, base_url.rstrip("/"), tenant_id, region, credentials, timeout, deadline)


def provision_contact_center(
    api: str,
    base_url: str,
    tenant_id: str,
    region: str,
    credentials: Credentials | Mapping[str, Any],
    webhook_url: str,
    queue_id: str,
    name: str,
    *,
    existing: tuple[str, str] | None = None,
    timeout: float = 10.0,
    deadline: float | None = None,
) -> tuple[str, str]:
    """Webhook for `webhook_url` + channel on `queue_id`; returns (webhook, channel). `existing` (the ids of an
    earlier deploy) are re-pointed with PUT (URL, API version, queue). Without them, or either one gone (404, e.g.
    an API switch 8x8 does not carry over), what already exists is adopted or made afresh, and the new ids are
    returned (the caller then deletes the old)."""
    if not queue_id:
        raise ProvisioningError("EightByEightQueueId is empty: give the 8x8 chat queue, or an EightByEightChannelId")
    client = _Client(_place(api, base_url, tenant_id, region, credentials, timeout, deadline))
    if existing is not None and _repoint(client, name, webhook_url, queue_id, *existing):
        return existing
    return _ensure(client, name, webhook_url, queue_id)


def _repoint(client: _Client, name: str, webhook_url: str, queue_id: str, webhook_id: str, channel_id: str) -> bool:
    """PUT the known webhook and channel; False when either one is gone."""
    hook = client.call(
        "PUT",
        f"{client.place.webhooks_path}/{webhook_id}",
        f"the webhook {webhook_url}",
        _webhook_body(client.place.api, name, webhook_url),
    )
    return hook is not None and _put_channel(client, channel_id, name, webhook_id, queue_id)


def deprovision_contact_center(
    api: str,
    base_url: str,
    tenant_id: str,
    region: str,
    credentials: Credentials | Mapping[str, Any],
    webhook_id: str | None,
    channel_id: str | None,
    *,
    name: str = "",
    webhook_url: str = "",
    timeout: float = 10.0,
    deadline: float | None = None,
) -> None:
    """Delete the channel, then the webhook (8x8 refuses to delete a webhook a channel uses). Gone already: fine.
    Without ids (a create that failed half-way), whatever carries `name` and `webhook_url` is removed."""
    client = _Client(_place(api, base_url, tenant_id, region, credentials, timeout, deadline))
    place = client.place
    if webhook_id is None and name and webhook_url:
        webhook_id = _find_webhook(client, name, webhook_url)
        if webhook_id is not None and channel_id is None:
            for channel in _find_channels(client, name, webhook_id):
                client.call("DELETE", f"{place.channels_path}/{_id(channel, 'the channel')}", "deleting the channel")
    if channel_id:
        client.call("DELETE", f"{place.channels_path}/{channel_id}", "deleting the channel")
    if webhook_id:
        client.call(
            "DELETE",
            f"{place.webhooks_path}/{webhook_id}",
            "deleting the webhook (is another channel still using it?)",
        )


# ---- the custom resource's view ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ResourceRequest:
    """The custom resource's properties (template.yaml `EightByEightProvisioning`)."""

    api: str
    base_url: str
    tenant_id: str
    region: str
    secret_arn: str
    webhook_url: str
    queue_id: str
    name: str

    REQUIRED = ("Api", "BaseUrl", "TenantId", "SecretArn", "WebhookUrl", "Name")

    @classmethod
    def from_properties(cls, props: Mapping[str, Any]) -> ResourceRequest:
        missing = [k for k in cls.REQUIRED if not str(props.get(k) or "").strip()]
        if missing:
            raise ProvisioningError(f"the custom resource lacks {', '.join(missing)} (a template error)")
        request = cls(
            api=str(props["Api"]),
            base_url=str(props["BaseUrl"]).rstrip("/"),
            tenant_id=str(props["TenantId"]),
            region=str(props.get("Region") or "us"),
            secret_arn=str(props["SecretArn"]),
            webhook_url=str(props["WebhookUrl"]),
            queue_id=str(props.get("QueueId") or ""),
            name=str(props["Name"]),
        )
        check_api(request.api)
        return request

    def same_place(self, other: ResourceRequest) -> bool:
        return (self.base_url, self.tenant_id, self.region) == (other.base_url, other.tenant_id, other.region)

    def same_target(self, other: ResourceRequest) -> bool:
        return self.same_place(other) and (self.api, self.webhook_url, self.queue_id, self.name) == (
            other.api,
            other.webhook_url,
            other.queue_id,
            other.name,
        )

    def args(self, credentials: Credentials) -> tuple[str, str, str, str, Credentials]:
        return self.api, self.base_url, self.tenant_id, self.region, credentials


def physical_id(webhook_id: str, channel_id: str) -> str:
    return f"{PHYSICAL_ID_PREFIX}{webhook_id}/{channel_id}"


def parse_physical_id(value: str | None) -> tuple[str, str] | None:
    if not value or not value.startswith(PHYSICAL_ID_PREFIX):
        return None  # crhelper's generated id after a failed create: nothing of ours is known by id
    webhook_id, sep, channel_id = value[len(PHYSICAL_ID_PREFIX) :].partition("/")
    return (webhook_id, channel_id) if sep and webhook_id and channel_id else None


def on_create(props: Mapping[str, Any], deadline: float | None = None) -> tuple[str, dict[str, str]]:
    return _provision(ResourceRequest.from_properties(props), None, deadline)


def on_update(
    props: Mapping[str, Any], old_props: Mapping[str, Any], current_id: str, deadline: float | None = None
) -> tuple[str, dict[str, str]]:
    request = ResourceRequest.from_properties(props)
    old = ResourceRequest.from_properties(old_props)
    known = parse_physical_id(current_id)
    if known is not None and request.same_target(old):
        return current_id, {"WebhookId": known[0], "ChannelId": known[1]}  # e.g. only the secret's ARN changed
    # Another tenant or 8x8 endpoint: make new ones there; CloudFormation then deletes the old (old properties).
    return _provision(request, known if request.same_place(old) else None, deadline)


def _provision(
    request: ResourceRequest, existing: tuple[str, str] | None, deadline: float | None
) -> tuple[str, dict[str, str]]:
    credentials = read_credentials(request.api, request.secret_arn)
    ids = provision_contact_center(
        *request.args(credentials),
        request.webhook_url,
        request.queue_id,
        request.name,
        existing=existing,
        deadline=deadline,
    )
    return physical_id(*ids), {"WebhookId": ids[0], "ChannelId": ids[1]}


def on_delete(props: Mapping[str, Any], current_id: str, deadline: float | None = None) -> None:
    known = parse_physical_id(current_id)
    try:
        request = ResourceRequest.from_properties(props)
        credentials = read_credentials(request.api, request.secret_arn)
        deprovision_contact_center(
            *request.args(credentials),
            *(known or (None, None)),
            name=request.name,
            webhook_url=request.webhook_url,
            deadline=deadline,
        )
    except ProvisioningError:
        if known is not None:
            raise
        # The create never succeeded (bad secret, bad properties...): failing here would leave the stack in
        # ROLLBACK_FAILED for a resource that may not exist. The cleanup by name was best effort.
        logger.warning("nothing provisioned was known by id; cleanup by name skipped or failed", exc_info=True)
