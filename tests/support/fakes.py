"""Stand-ins for 8x8 where the HTTP edge is not the subject: the contact center client and its key endpoint."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.support.samples import CONVERSATION_ID


@dataclass
class FakeContactCenter:
    """Records what the connector asks of 8x8; `errors` queues an exception per operation (create/send/leave)."""

    conversation_ids: list[str] = field(default_factory=lambda: [CONVERSATION_ID])
    errors: dict[str, list[BaseException]] = field(default_factory=dict)
    created: list[dict[str, Any]] = field(default_factory=list)
    sent: list[tuple[str, str, str]] = field(default_factory=list)
    left: list[str] = field(default_factory=list)

    def _maybe_fail(self, operation: str) -> None:
        queued = self.errors.get(operation)
        if queued:
            raise queued.pop(0)

    api: str = "chat-api-v2"
    routed: list[tuple[str, Any]] = field(default_factory=list)
    customer_updates: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    typing: list[tuple[str, str]] = field(default_factory=list)
    found: dict[str, str] = field(default_factory=dict)  # caseId -> conversation id 8x8 already holds
    thinking: list[str] = field(default_factory=list)
    read_receipts: list[tuple[str, str, int]] = field(default_factory=list)
    post_agent: list[tuple[str, str]] = field(default_factory=list)

    def create_conversation(self, conversation: Any) -> str:
        from casebridge.contact_center.chat_api_v2 import customer_body  # noqa: PLC0415 - casebridge only when called

        self._maybe_fail("create")
        self.created.append(
            {
                "channelId": conversation.channel_id,
                "customer": customer_body(conversation.case_id, conversation.customer),
                "history": list(conversation.history),
                "routing": conversation.routing,
            }
        )
        return self.conversation_ids.pop(0) if len(self.conversation_ids) > 1 else self.conversation_ids[0]

    def route(self, conversation_id: str, routing: Any) -> None:
        self._maybe_fail("route")
        self.routed.append((conversation_id, routing))

    def update_customer(self, conversation_id: str, case_id: str, customer: Any) -> None:
        from casebridge.contact_center.chat_api_v2 import customer_body  # noqa: PLC0415

        self._maybe_fail("update")
        self.customer_updates.append((conversation_id, customer_body(case_id, customer)))

    def find_conversation(self, case_id: str, channel_id: str) -> str | None:
        self._maybe_fail("find")
        return self.found.get(case_id)

    def send_typing(self, conversation_id: str, author_type: str) -> None:
        self._maybe_fail("typing")
        self.typing.append((conversation_id, author_type))

    def send_thinking(self, conversation_id: str, max_seconds: int = 60) -> None:
        self._maybe_fail("thinking")
        self.thinking.append(conversation_id)

    def send_read_receipt(self, conversation_id: str, author_type: str, read_at_ms: int) -> None:
        self._maybe_fail("read")
        self.read_receipts.append((conversation_id, author_type, read_at_ms))

    def assign_post_agent(
        self, conversation_id: str, webhook_id: str, max_total_minutes: int, user_timeout_minutes: int
    ) -> None:
        self._maybe_fail("post_agent")
        self.post_agent.append((conversation_id, webhook_id))

    def send_message(self, conversation_id: str, text: str, author_type: str) -> None:
        self._maybe_fail("send")
        self.sent.append((conversation_id, text, author_type))

    def customer_leaves(self, conversation_id: str) -> None:
        self._maybe_fail("leave")
        self.left.append(conversation_id)


@dataclass
class StubJwkFetcher:
    """Serves the test's public keys by kid; counts calls; can be switched off (endpoint down)."""

    keys: dict[str, dict[str, str]]
    down: bool = False
    calls: list[str] = field(default_factory=list)

    def __call__(self, kid: str) -> dict[str, str] | None:
        from casebridge.errors import SigningKeyUnavailable  # noqa: PLC0415 - casebridge only when called

        self.calls.append(kid)
        if self.down:
            raise SigningKeyUnavailable("key endpoint down (test)")
        return self.keys.get(kid)
