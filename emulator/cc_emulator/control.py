"""Typed HTTP clients for other processes: the control API, and a minimal Chat API v2 client."""

from __future__ import annotations

import time
from typing import Any

import requests

from .delivery import DeliveryLogView, DeliveryQuery


class EmulatorError(RuntimeError):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


class ControlClient(DeliveryLogView[dict[str, Any]]):
    """Client for /_emulator/ (no auth)."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base = base_url.rstrip("/") + "/_emulator"
        self.timeout = timeout
        self.session = requests.Session()

    def _call(
        self,
        method: str,
        path: str,
        json: Any = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> Any:
        resp = self.session.request(method, self.base + path, json=json, params=params, timeout=timeout or self.timeout)
        body = resp.json() if resp.content else None
        if resp.status_code not in ok:
            raise EmulatorError(resp.status_code, body)
        return body

    def health(self) -> bool:
        return bool(self._call("GET", "/health")["ok"])

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/state")
        return result

    def reset(self) -> None:
        self._call("POST", "/reset")

    def provision(
        self, webhook_uri: str, queue_id: str | None = None, name: str = "casebridge", version: str = "v2.0"
    ) -> tuple[str, str]:
        """`version`: "v2.0" / "chat-api-v2" or "Chat Gateway v1.0" / "chat-gateway-v1"."""
        body = self._call(
            "POST", "/provision", {"webhookUri": webhook_uri, "queueId": queue_id, "name": name, "version": version}
        )
        return str(body["webHookId"]), str(body["channelId"])

    def _select(self, query: DeliveryQuery) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/deliveries", params=query.params())["deliveries"]
        return result

    def _wait(self, query: DeliveryQuery, count: int, timeout: float) -> list[dict[str, Any]]:
        """A server-side long poll."""
        params = {**query.params(), "count": count, "timeout": timeout}
        resp = self.session.get(self.base + "/deliveries/wait", params=params, timeout=timeout + self.timeout)
        if resp.status_code == 408:
            raise TimeoutError(f"only {len(resp.json()['deliveries'])} of {count} deliveries within {timeout}s")
        if resp.status_code != 200:
            raise EmulatorError(resp.status_code, resp.text)
        result: list[dict[str, Any]] = resp.json()["deliveries"]
        return result

    def wait_quiet(self, timeout: float = 5.0) -> None:
        self._call("POST", "/quiet", params={"timeout": timeout}, timeout=timeout + self.timeout)

    def conversation(self, conversation_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/conversations/{conversation_id}")
        return result

    def agent_accept(self, agent_id: str, conversation_id: str | None = None) -> str:
        body = {"conversationId": conversation_id} if conversation_id else {}
        return str(self._call("POST", f"/agents/{agent_id}/accept", body)["conversationId"])

    def agent_reply(
        self,
        agent_id: str,
        text: str,
        attachments: list[dict[str, Any]] | None = None,
        cards: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Attachments as {name, contentType, content (base64) | text}; cards as sent on the Gateway."""
        body: dict[str, Any] = {"text": text}
        if attachments:
            body["attachments"] = attachments
        if cards:
            body["cards"] = cards
        result: dict[str, Any] = self._call("POST", f"/agents/{agent_id}/reply", body)
        return result

    def agent_typing(self, agent_id: str, typing: bool = True) -> None:
        self._call("POST", f"/agents/{agent_id}/typing", {"typing": typing})

    def settings(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/settings")
        return result

    def update_settings(self, **changes: Any) -> dict[str, Any]:
        """e.g. update_settings(gatewayReopen="needs_assignment", gatewayEchoIsEcho=True)."""
        result: dict[str, Any] = self._call("POST", "/settings", changes)
        return result

    def agent_transfer(self, agent_id: str, queue_id: str) -> None:
        self._call("POST", f"/agents/{agent_id}/transfer", {"queueId": queue_id})

    def agent_leave(self, agent_id: str, wrap_up_code: str | None = None) -> dict[str, Any]:
        """End the agent's interaction, with a wrap-up code (id or name) if given."""
        body = {"wrapUpCode": wrap_up_code} if wrap_up_code is not None else None
        result: dict[str, Any] = self._call("POST", f"/agents/{agent_id}/leave", body)
        return result

    def agent_read(self, agent_id: str, read_at: int | None = None) -> None:
        self._call("POST", f"/agents/{agent_id}/read", {} if read_at is None else {"readAt": read_at})

    def set_queue_status(self, queue_id: str, status: str) -> None:
        """open | closed | empty."""
        self._call("POST", f"/queues/{queue_id}/status", {"status": status})

    def wrap_up_codes(self, queue_id: str) -> list[dict[str, str]]:
        result: list[dict[str, str]] = self._call("GET", f"/queues/{queue_id}/wrap-up-codes")["wrapUpCodes"]
        return result

    def set_agent_available(self, agent_id: str, available: bool) -> None:
        self._call("POST", f"/agents/{agent_id}/availability", {"available": available})

    def add_agent(
        self,
        agent_id: str,
        queues: list[str],
        name: str | None = None,
        mode: str = "script",
        script: dict[str, Any] | None = None,
    ) -> None:
        self._call(
            "POST",
            "/agents",
            {"id": agent_id, "name": name or agent_id, "queues": queues, "mode": mode, "script": script or {}},
        )

    def add_queue(self, queue_id: str, name: str | None = None) -> None:
        self._call("POST", "/queues", {"id": queue_id, "name": name or queue_id})

    def add_fault(self, kind: str, op: str = "*", count: int | None = None, **fields: Any) -> dict[str, Any]:
        """e.g. add_fault("status", "post_message", count=2, status=429, retry_after=3)."""
        result: dict[str, Any] = self._call("POST", "/faults", {"kind": kind, "op": op, "count": count, **fields})
        return result["faults"][0]  # type: ignore[no-any-return]

    def faults(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/faults")["faults"]
        return result

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def expire_tokens(self) -> int:
        return int(self._call("POST", "/tokens/expire")["expired"])

    def rotate_keys(self) -> str:
        return str(self._call("POST", "/keys/rotate")["kid"])

    def requests(self, op: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/requests", params={"op": op})
        return result

    def request_count(self, op: str) -> int:
        return int(self.requests(op)["counts"].get(op, 0))


class GatewayClient:
    """Minimal Chat Gateway v1 client (`x-api-key`, `X-8x8-Tenant`); returns raw `requests.Response` objects."""

    def __init__(self, base_url: str, tenant: str | None = "t1", api_key: str = "K", timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.prefix = f"{self.base_url}/chat-gateway/v1"
        self.tenant = tenant
        self.api_key = api_key
        self.timeout = timeout
        self.session = requests.Session()

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"x-api-key": self.api_key, "Accept": "application/hal+json"}
        if self.tenant is not None:
            headers["X-8x8-Tenant"] = self.tenant
        headers.update(kwargs.pop("headers", {}))
        kwargs.setdefault("timeout", self.timeout)
        return self.session.request(method, self.prefix + path, headers=headers, **kwargs)

    def jwk(self, kid: str) -> requests.Response:
        return self.session.get(f"{self.prefix}/jwk/{kid}/public", timeout=self.timeout)

    def create_webhook(self, uri: str, name: str = "hook") -> requests.Response:
        version = "Chat Gateway v1.0"
        return self.request("POST", "/webhooks", json={"name": name, "uri": uri, "version": version})

    def create_channel(self, webhook_id: str, queue_id: str, name: str = "channel") -> requests.Response:
        body = {
            "name": name,
            "type": "ChatAPI",
            "webHookId": webhook_id,
            "routingOptions": {"type": "queue", "id": queue_id},
        }
        return self.request("POST", "/channels", json=body)

    def create_conversation(
        self,
        channel_id: str,
        user: dict[str, Any] | None = None,
        history: list[dict[str, Any]] | None = None,
        assignment: dict[str, str] | None = None,
    ) -> requests.Response:
        body: dict[str, Any] = {"channelId": channel_id, "user": user or {"name": "Jane Doe"}}
        if history is not None:
            body["history"] = {"messages": history}
        if assignment is not None:
            body["assignment"] = assignment
        return self.request("POST", "/conversations", json=body)

    def post_message(
        self, conversation_id: str, text: str, author_type: str = "user", **extra: Any
    ) -> requests.Response:
        body = {"authorType": author_type, "text": text, **extra}
        return self.request("POST", f"/conversations/{conversation_id}/messages", json=body)

    def user_leaves(self, conversation_id: str) -> requests.Response:
        return self.request("PATCH", f"/conversations/{conversation_id}/participants/user", json={"removed": True})

    def assign(self, conversation_id: str, queue_id: str, kind: str = "queue") -> requests.Response:
        body = {"assignment": {"type": kind, "id": queue_id}}
        return self.request("PATCH", f"/conversations/{conversation_id}", json=body)

    def upload_attachment(
        self, conversation_id: str, filename: str, data: bytes, content_type: str, author_type: str = "user"
    ) -> requests.Response:
        files = {"attachment": (filename, data, content_type), "authorType": (None, author_type)}
        return self.request("POST", f"/conversations/{conversation_id}/attachments", files=files)


def _client_credentials(
    session: requests.Session, base_url: str, auth: tuple[str, str], timeout: float
) -> dict[str, Any]:
    """The emulator's answer to an OAuth client-credentials grant (Chat API v2 and Real-time Metrics alike)."""
    resp = session.post(
        f"{base_url}/oauth/v2/token", auth=auth, data={"grant_type": "client_credentials"}, timeout=timeout
    )
    resp.raise_for_status()
    body: dict[str, Any] = resp.json()
    return body


class ChatV2Client:
    """Minimal Chat API v2 client with token caching; returns raw `requests.Response` objects."""

    def __init__(
        self,
        base_url: str,
        tenant: str,
        region: str = "us",
        api_key: str = "K",
        api_secret: str = "S",  # noqa: S107 - emulator default
        timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.prefix = f"{self.base_url}/vcc/{region}/chat/v2/tenant/{tenant}"
        self.region = region
        self.auth = (api_key, api_secret)
        self.timeout = timeout
        self.session = requests.Session()
        self._token: str | None = None
        self._expires = 0.0

    def token(self, force: bool = False) -> str:
        if force or self._token is None or time.monotonic() >= self._expires:
            body = _client_credentials(self.session, self.base_url, self.auth, self.timeout)
            self._token = str(body["access_token"])
            self._expires = time.monotonic() + float(body["expires_in"]) - 1
        return self._token

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token()}", **kwargs.pop("headers", {})}
        kwargs.setdefault("timeout", self.timeout)
        return self.session.request(method, self.prefix + path, headers=headers, **kwargs)

    def jwk(self, kid: str) -> requests.Response:
        return self.session.get(f"{self.base_url}/vcc/{self.region}/chat/v2/jwk/{kid}/public", timeout=self.timeout)

    def create_webhook(self, uri: str, name: str = "hook") -> requests.Response:
        return self.request("POST", "/web-hooks", json={"name": name, "uri": uri, "notificationVersion": "v2.0"})

    def create_channel(self, webhook_id: str, queue_id: str, name: str = "channel") -> requests.Response:
        return self.request(
            "POST",
            "/channels",
            json={"name": name, "webHookId": webhook_id, "routingOptions": {"type": "queue", "id": queue_id}},
        )

    def create_conversation(
        self, channel_id: str, customer: dict[str, str] | None = None, history: list[dict[str, str]] | None = None
    ) -> requests.Response:
        body: dict[str, Any] = {"channelId": channel_id, "customer": customer or {"name": "Jane Doe"}}
        if history is not None:
            body["history"] = {"messages": history}
        return self.request("POST", "/conversations", json=body)

    def post_message(self, conversation_id: str, text: str, author_type: str = "user") -> requests.Response:
        return self.request(
            "POST", f"/conversations/{conversation_id}/messages", json={"text": text, "authorType": author_type}
        )

    def customer_leaves(self, conversation_id: str) -> requests.Response:
        return self.request("DELETE", f"/conversations/{conversation_id}/participants/customer")


class MetricsClient:
    """Minimal Real-time Metrics v5 client: its own OAuth token (the metrics key and secret), cached."""

    def __init__(
        self,
        base_url: str,
        api_key: str = "AK",
        api_secret: str = "AS",  # noqa: S107 - emulator default
        region_prefix: str = "",
        tenant_info: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.prefix = f"{self.base_url}{region_prefix}/analytics/cc/v5/realtime-metrics"
        self.auth = (api_key, api_secret)
        self.tenant_info = tenant_info
        self.timeout = timeout
        self.session = requests.Session()
        self._token: str | None = None

    def token(self, force: bool = False) -> str:
        if force or self._token is None:
            self._token = str(_client_credentials(self.session, self.base_url, self.auth, self.timeout)["access_token"])
        return self._token

    def request(self, path: str, **params: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token()}", "Accept": "application/json"}
        if self.tenant_info is not None:
            headers["X-Tenant-Info"] = self.tenant_info
        return self.session.get(self.prefix + path, headers=headers, params=params, timeout=self.timeout)

    def queue(self, queue_id: str, *metrics: str) -> dict[str, Any]:
        """`{metric: value}` of one queue (either answer shape, E5)."""
        resp = self.request(f"/queues/{queue_id}", metrics=list(metrics))
        resp.raise_for_status()
        body = resp.json()
        item = body[0] if isinstance(body, list) else body
        return {m["key"]: m["value"] for m in item["metrics"]}
