"""The contact center's state: the tables, their lookups, ids and stored attachments.

Everything else builds on this one-way: `events` renders happenings from it, `routing` moves
conversations through its queues, the engine's operations change it. It imports none of them.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import secrets
import threading
import time
from typing import TypeVar
from urllib.parse import quote

from .config import EmulatorConfig
from .model import Agent, Attachment, Channel, Conversation, NotFound, Queue, Webhook
from .signing import b64url

T = TypeVar("T")


class CenterState:
    """Tables keyed by id, read and changed under `lock` (re-entrant: operations nest)."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.public_base_url = config.public_base_url or f"http://{config.host}:{config.port}"
        self._url_secret = secrets.token_bytes(32)
        self._ids = itertools.count(1)
        self.clear_tables()

    def clear_tables(self) -> None:
        """Empty tables; the configured queues exist, agents are added by the caller (routing dispatches)."""
        self.webhooks: dict[str, Webhook] = {}
        self.channels: dict[str, Channel] = {}
        self.conversations: dict[str, Conversation] = {}
        self.queues: dict[str, Queue] = {q.id: Queue(q.id, q.name, status=q.status) for q in self.config.queues}
        self.agents: dict[str, Agent] = {}

    def new_id(self) -> str:
        return str(next(self._ids))

    def _lookup(self, table: dict[str, T], kind: str, key: str) -> T:
        with self.lock:
            found = table.get(key)
            if found is None:
                raise NotFound(kind, key)
            return found

    def _rows(self, table: dict[str, T]) -> list[T]:
        """A copy of a table's rows, to read without the lock."""
        with self.lock:
            return list(table.values())

    def get_webhook(self, webhook_id: str) -> Webhook:
        return self._lookup(self.webhooks, "WebHook", webhook_id)

    def get_channel(self, channel_id: str) -> Channel:
        return self._lookup(self.channels, "Channel", channel_id)

    def get_conversation(self, conversation_id: str) -> Conversation:
        return self._lookup(self.conversations, "Conversation", conversation_id)

    def webhook_of(self, conv: Conversation) -> Webhook | None:
        """The webhook that receives `conv`'s events (None once its channel is gone)."""
        channel = self.channels.get(conv.channel_id)
        return self.webhooks.get(channel.webhook_id) if channel else None

    def gateway_dialect(self, conv: Conversation) -> bool:
        hook = self.webhook_of(conv)
        return hook is not None and hook.gateway

    # -- attachments -------------------------------------------------------------------------

    def add_attachment(
        self, conv: Conversation, filename: str, content_type: str, data: bytes, author_type: str = "user"
    ) -> Attachment:
        with self.lock:
            att = Attachment(
                b64url(secrets.token_bytes(48)), conv.id, filename, content_type, data, time.time(), author_type
            )
            conv.attachments[att.id] = att
            return att

    def get_attachment(self, conversation_id: str, attachment_id: str) -> Attachment:
        with self.lock:
            conv = self.get_conversation(conversation_id)
            att = conv.attachments.get(attachment_id)
            if att is None:
                raise NotFound("Attachment", attachment_id)
            return att

    def _url_signature(self, attachment_id: str, expires: int) -> str:
        mac = hmac.new(self._url_secret, f"{attachment_id}:{expires}".encode(), hashlib.sha256).digest()
        return b64url(mac)

    def presigned_url(self, att: Attachment) -> str:
        """A storage-style URL that works without the API key until it expires."""
        expires = int(time.time()) + self.config.attachment_url_ttl
        sig = self._url_signature(att.id, expires)
        return (
            f"{self.public_base_url}/_storage/attachments/{att.id}/{quote(att.filename)}"
            f"?expires={expires}&signature={sig}"
        )

    def presigned_attachment(self, attachment_id: str, expires: str, signature: str) -> Attachment | None:
        """The attachment if the URL's signature is right and it has not expired, else None."""
        try:
            exp = int(expires)
        except ValueError:
            return None
        if exp < time.time() or not hmac.compare_digest(self._url_signature(attachment_id, exp), signature):
            return None
        with self.lock:
            for conv in self.conversations.values():
                if attachment_id in conv.attachments:
                    return conv.attachments[attachment_id]
        return None
