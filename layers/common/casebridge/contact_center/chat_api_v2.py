"""ContactCenterClient for 8x8 Contact Center Chat API v2 (OAuth bearer token, /vcc/{region}/chat/v2).

8x8 switched v2 off after 2023-09-30; it stays as a selectable second implementation. What only the Chat Gateway
can do (routing, customer updates, typing) raises UnsupportedByContactCenterApi before any call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

import requests

from casebridge.clock import wall_time
from casebridge.contact_center import http
from casebridge.contact_center.base import CHAT_API_V2, ContactCenterApi, NewConversation, RichMessage
from casebridge.contact_center.client_base import ClientBase, is_case_conversation
from casebridge.contact_center.tokens import AccessToken, TokenProvider
from casebridge.errors import (
    ContactCenterAuthError,
    ContactCenterError,
    ContactCenterMisconfigured,
    UnsupportedByContactCenterApi,
)

if TYPE_CHECKING:
    from casebridge.business_api.models import Customer, Routing  # annotations only (the intake loads no models)

NEEDS_GATEWAY = "needs the Chat Gateway (EightByEightApi=chat-gateway-v1)"


def customer_body(case_id: str, customer: Customer) -> dict[str, str]:
    """v2's flat `customer` object: caseId, the standard fields under their own names, then custom keys."""
    return {"caseId": case_id, **customer.standard_fields(), **customer.properties}


class ChatApiV2Client(ClientBase):
    api: ContactCenterApi = CHAT_API_V2

    def __init__(
        self,
        base_url: str,
        region: str,
        tenant_id: str,
        tokens: TokenProvider,
        *,
        timeout: float = 5.0,
        session: requests.Session | None = None,
    ) -> None:
        super().__init__(base_url, timeout, session)
        self.tenant_path = self.root = f"{self.base_url}/vcc/{region}/chat/v2/tenant/{tenant_id}"
        self.tokens = tokens

    def _call(self, method: str, path: str, operation: str, **kwargs: Any) -> requests.Response:
        """Authenticated call; on 401 the token is refreshed once and the call retried once. A second 401 means
        8x8 refuses these credentials: the stack's configuration, not something a retry fixes."""
        for attempt in (1, 2):
            token = self.tokens.get()
            try:
                return super()._call(method, path, operation, headers={"Authorization": f"Bearer {token}"}, **kwargs)
            except ContactCenterAuthError as error:
                self.tokens.invalidate(token)
                if attempt == 2:
                    raise ContactCenterMisconfigured(
                        f"8x8 refused a fresh access token for {operation}: check the API key, secret and tenant",
                        upstream_status=error.upstream_status,
                        upstream_code=error.upstream_code,
                    ) from error
        raise AssertionError("unreachable")

    def create_conversation(self, conversation: NewConversation) -> str:
        history = conversation.history
        if conversation.routing is not None:
            raise UnsupportedByContactCenterApi(f"Chat API v2 cannot route a conversation: routing {NEEDS_GATEWAY}")
        if any(m.cards for m in history):
            raise UnsupportedByContactCenterApi(f"Chat API v2 has no cards: cards in history {NEEDS_GATEWAY}")
        body: dict[str, Any] = {
            "channelId": conversation.channel_id,
            "customer": customer_body(conversation.case_id, conversation.customer),
        }
        if history:
            body["history"] = {"messages": [{"text": m.text, "type": m.author_type} for m in history]}
        return self._open_conversation(body)

    def send_message(self, conversation_id: str, text: str, author_type: str) -> None:
        self._post_message(conversation_id, {"text": text, "authorType": author_type})

    def customer_leaves(self, conversation_id: str) -> None:
        self._leave("DELETE", conversation_id, "customer")

    def route(self, conversation_id: str, routing: Routing) -> None:
        raise UnsupportedByContactCenterApi(f"Chat API v2 cannot route a conversation: routing {NEEDS_GATEWAY}")

    def update_customer(self, conversation_id: str, case_id: str, customer: Customer) -> None:
        raise UnsupportedByContactCenterApi(
            f"Chat API v2 cannot change the customer data of an open conversation: that {NEEDS_GATEWAY}"
        )

    def send_typing(self, conversation_id: str, author_type: str) -> None:
        raise UnsupportedByContactCenterApi(f"Chat API v2 has no typing indicator: typing {NEEDS_GATEWAY}")

    def send_thinking(self, conversation_id: str, max_seconds: int = 60) -> None:
        raise UnsupportedByContactCenterApi(f"Chat API v2 has no thinking indicator: thinking {NEEDS_GATEWAY}")

    def send_read_receipt(self, conversation_id: str, author_type: str, read_at_ms: int) -> None:
        raise UnsupportedByContactCenterApi(f"Chat API v2 has no read receipts: read receipts {NEEDS_GATEWAY}")

    def assign_post_agent(
        self, conversation_id: str, webhook_id: str, max_total_minutes: int, user_timeout_minutes: int
    ) -> None:
        raise UnsupportedByContactCenterApi(f"Chat API v2 has no post-agent assignment: it {NEEDS_GATEWAY}")

    def upload_attachment(
        self, conversation_id: str, author_type: str, file_name: str, content_type: str, body: bytes | IO[bytes]
    ) -> str:
        raise UnsupportedByContactCenterApi(f"Chat API v2 has no attachments: attachments {NEEDS_GATEWAY}")

    def send_rich_message(self, conversation_id: str, message: RichMessage) -> None:
        raise UnsupportedByContactCenterApi(
            f"Chat API v2 has no attachments or cards: attachments and cards {NEEDS_GATEWAY}"
        )

    def download_attachment(self, conversation_id: str, attachment_id: str) -> requests.Response:
        raise UnsupportedByContactCenterApi(f"Chat API v2 has no attachments: attachments {NEEDS_GATEWAY}")

    def find_conversation(self, case_id: str, channel_id: str) -> str | None:
        """GET .../conversations filtered by `customer.caseId` (the OAS's `customer.<anyCustomerKeyName>`) and
        `channel-id`, newest first; the answer is `{data:[{id, channelId, customer, startTime}], page}`."""
        params = {"customer.caseId": case_id, "channel-id": channel_id, "order": "desc"}
        return self._find_conversation(params, lambda payload: newest_match(payload, case_id, channel_id))


def newest_match(payload: Any, case_id: str, channel_id: str) -> str | None:
    """The newest conversation of the list that really is this case's on this channel (checked again here:
    a server that ignored a filter must not hand us another case's conversation)."""
    items = payload.get("data") if isinstance(payload, dict) else None
    found: list[tuple[str, int, str]] = []
    for position, item in enumerate(items if isinstance(items, list) else []):
        if isinstance(item, dict) and is_case_conversation(item, "customer", case_id, channel_id):
            started = item.get("startTime")
            # ISO-8601 times of one server sort as text; without them, the first of a newest-first list wins.
            found.append((started if isinstance(started, str) else "", -position, str(item["id"])))
    return max(found)[2] if found else None


def token_fetcher(
    base_url: str,
    credentials: Callable[[], tuple[str, str]],
    *,
    timeout: float = 5.0,
    session: requests.Session | None = None,
    clock: Callable[[], float] = wall_time,
) -> Callable[[], AccessToken]:
    """The OAuth client-credentials call. 8x8 sends expires_in as a string."""
    own_session = session or http.new_session()
    token_url = http.require_safe_base_url(base_url) + "/oauth/v2/token"

    def fetch() -> AccessToken:
        api_key, api_secret = credentials()
        try:
            answer = http.request(
                own_session,
                "POST",
                token_url,
                "token",
                timeout,
                unauthorized=ContactCenterMisconfigured,
                auth=(api_key, api_secret),
                data={"grant_type": "client_credentials"},
            )
        except ContactCenterError as error:
            if error.upstream_status != 400:
                raise
            # OAuth servers answer a refused client with 400 (invalid_client): the stack's credentials.
            raise ContactCenterMisconfigured(
                "8x8 refused the API key and secret for a token",
                upstream_status=400,
                upstream_code=error.upstream_code,
            ) from error
        try:
            body = answer.json()
            lifetime = str(body.get("expires_in", "0")).strip()
            if not lifetime.isascii() or not lifetime.isdigit():
                raise ValueError(f"expires_in is not a number of seconds: {lifetime!r}")
            return AccessToken(str(body["access_token"]), int(clock() * 1000) + int(lifetime) * 1000)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ContactCenterError(
                "8x8 token answer is not understood", upstream_status=answer.status_code
            ) from error

    return fetch
