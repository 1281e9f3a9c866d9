"""The tenant's topology: credentials, queues, agents, webhooks, channels.

`TenantOps` is one part of `Engine`; it works on the `CenterState` tables and, for what routing
must react to (a new or available agent), calls the engine's `Router`.
"""

from __future__ import annotations

import secrets

from .config import AgentConfig, QueueConfig
from .delivery import DeliveryRecord, DeliveryWorker, Event
from .model import GATEWAY_VERSION, V2_VERSION, Agent, Channel, Queue, Validation, ValidationFailed, Webhook
from .routing import Router
from .state import CenterState
from .tokens import CHAT_PRODUCT, METRICS_PRODUCT

API_VERSIONS = {"chat-api-v2": V2_VERSION, "chat-gateway-v1": GATEWAY_VERSION}


class TenantOps(CenterState):
    router: Router
    delivery: DeliveryWorker

    def send_event(self, event: Event) -> None:
        self.delivery.submit(event)

    # -- auth --------------------------------------------------------------------------------

    def check_credentials(self, key: str, secret: str) -> bool:
        """The Chat API v2 key and secret."""
        return bool(self.token_products(key, secret) & {CHAT_PRODUCT})

    def token_products(self, key: str, secret: str) -> frozenset[str]:
        """The API products a token for this key and secret opens (none: the pair is wrong)."""
        pairs = (
            (CHAT_PRODUCT, self.config.api_key, self.config.api_secret),
            (METRICS_PRODUCT, self.config.metrics_api_key, self.config.metrics_api_secret),
        )
        return frozenset(
            product
            for product, k, s in pairs
            if secrets.compare_digest(key.encode(), k.encode()) & secrets.compare_digest(secret.encode(), s.encode())
        )

    def check_api_key(self, key: str) -> bool:
        return secrets.compare_digest(key.encode("utf-8"), self.config.api_key.encode("utf-8"))

    # -- topology ----------------------------------------------------------------------------

    def add_queue(self, queue: QueueConfig) -> Queue:
        with self.lock:
            q = self.queues.setdefault(queue.id, Queue(queue.id, queue.name, status=queue.status))
            return q

    def add_agent(self, cfg: AgentConfig) -> Agent:
        with self.lock:
            return self.router.add_agent(cfg)

    def set_agent_available(self, agent_id: str, available: bool) -> Agent:
        with self.lock:
            agent = self.router.agent(agent_id)
            self.router.set_available(agent, available)
            return agent

    # -- webhooks ----------------------------------------------------------------------------

    def create_webhook(self, name: str, uri: str, version: str = V2_VERSION) -> Webhook:
        with self.lock:
            hook = Webhook(self.new_id(), name, uri, version)
            self.webhooks[hook.id] = hook
        self.send_event(
            Event.build(
                "WEB_HOOK_VERIFY",
                uri,
                {"notificationVersion": version, "eventType": "WEB_HOOK_VERIFY"},
                webhook_id=hook.id,
            )
        )
        return hook

    def list_webhooks(self) -> list[Webhook]:
        return self._rows(self.webhooks)

    def update_webhook(self, webhook_id: str, name: str, uri: str, version: str) -> Webhook:
        with self.lock:
            hook = self.get_webhook(webhook_id)
            hook.name, hook.uri, hook.version = name, uri, version
            return hook

    def delete_webhook(self, webhook_id: str) -> None:
        with self.lock:
            self.get_webhook(webhook_id)
            in_use = [c.id for c in self.channels.values() if c.webhook_id == webhook_id]
            if in_use:
                raise ValidationFailed(
                    [Validation("webHookId", webhook_id, "webhook_in_use", f"WebHook used by channels {in_use}")]
                )
            del self.webhooks[webhook_id]

    def verify_webhook_uri(self, uri: str, version: str) -> DeliveryRecord:
        """Synchronous WEB_HOOK_VERIFY to `uri`, as the verify endpoint does."""
        event = Event.build("WEB_HOOK_VERIFY", uri, {"notificationVersion": version, "eventType": "WEB_HOOK_VERIFY"})
        record = self.delivery.send_once(event)
        self.delivery.log(record)
        return record

    # -- channels ----------------------------------------------------------------------------

    def _check_channel_refs(self, webhook_id: str, queue_id: str) -> None:
        problems = []
        if webhook_id not in self.webhooks:
            problems.append(
                Validation("webHookId", webhook_id, "invalid_webhook", f"WebHook ID {webhook_id} is invalid.")
            )
        if queue_id not in self.queues:
            problems.append(
                Validation("routingOptions.id", queue_id, "invalid_queue", f"Queue ID {queue_id} is invalid.")
            )
        if problems:
            raise ValidationFailed(problems)

    def create_channel(self, name: str, webhook_id: str, queue_id: str, channel_type: str = "ChatAPI") -> Channel:
        with self.lock:
            self._check_channel_refs(webhook_id, queue_id)
            channel = Channel(self.new_id(), name, webhook_id, queue_id, channel_type)
            self.channels[channel.id] = channel
            return channel

    def list_channels(self) -> list[Channel]:
        return self._rows(self.channels)

    def update_channel(
        self, channel_id: str, name: str, webhook_id: str, queue_id: str, channel_type: str | None = None
    ) -> Channel:
        with self.lock:
            channel = self.get_channel(channel_id)
            self._check_channel_refs(webhook_id, queue_id)
            channel.name, channel.webhook_id, channel.queue_id = name, webhook_id, queue_id
            if channel_type:
                channel.type = channel_type
            return channel

    def delete_channel(self, channel_id: str) -> None:
        with self.lock:
            self.get_channel(channel_id)
            del self.channels[channel_id]

    def provision(
        self, webhook_uri: str, queue_id: str | None = None, name: str = "casebridge", version: str = V2_VERSION
    ) -> tuple[str, str]:
        """Webhook + channel for `webhook_uri` on `queue_id` (default: first queue).

        `version` is the webhook's event dialect: "v2.0" (Chat API v2) or "Chat Gateway v1.0"; the API
        names "chat-api-v2" / "chat-gateway-v1" are accepted too.
        """
        version = API_VERSIONS.get(version, version)
        if version not in (V2_VERSION, GATEWAY_VERSION, "v1.0"):
            raise ValueError(f"unknown webhook version {version!r}")
        with self.lock:
            qid = queue_id or next(iter(self.queues))
        hook = self.create_webhook(f"{name}-webhook", webhook_uri, version)
        channel = self.create_channel(f"{name}-channel", hook.id, qid)
        return hook.id, channel.id
