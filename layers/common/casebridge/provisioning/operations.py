"""Create, adopt, re-point and remove the webhook and channel in 8x8: every call safe to repeat."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from casebridge.provisioning.client import Place, _channel_body, _Client, _id, _queue_of, _webhook_body
from casebridge.provisioning.credentials import Credentials, ProvisioningError, check_api, parse_credentials


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
