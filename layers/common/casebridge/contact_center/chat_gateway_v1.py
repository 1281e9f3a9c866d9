"""ContactCenterClient for 8x8 Contact Center Chat Gateway v1 (x-api-key, /chat-gateway/v1; GATEWAY.md).

Mapping of the business API: customer → `user` (customerId → userId, custom properties → additionalProperties
[{key, value}]), routing → `assignment`, history → `history.messages[{authorType, text}]`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote

import requests

from casebridge.contact_center import http
from casebridge.contact_center.base import CHAT_GATEWAY_V1, ContactCenterApi, NewConversation, RichMessage
from casebridge.contact_center.client_base import ClientBase, is_case_conversation
from casebridge.errors import ContactCenterError, ContactCenterMisconfigured, InvalidRequest

if TYPE_CHECKING:
    from casebridge.business_api.models import (  # annotations only (the intake loads no models)
        Customer,
        HistoryMessage,
        Routing,
    )

PREFIX = "/chat-gateway/v1"
ACCEPT = "application/hal+json, application/json"  # success is HAL, errors problem+json; both parse as JSON
# Standard customer fields under the Gateway's names (T15: `customerId` is not a `user` field; userId is the
# documented one, used by 8x8's CRM screen pop).
USER_FIELDS = {"name": "name", "customerId": "userId", "email": "email", "phone": "phone", "company": "company"}
_FIQL_BARE = re.compile(r"[A-Za-z0-9._~-]+")


def user_body(case_id: str, customer: Customer) -> dict[str, Any]:
    """The Gateway `user` object (ConversationUserData) for a case's customer."""
    standard = customer.standard_fields()
    user: dict[str, Any] = {USER_FIELDS[k]: v for k, v in standard.items() if k in USER_FIELDS}
    user["caseId"] = case_id
    if "language" in standard:
        user["language"] = standard["language"]
    if customer.properties:
        user["additionalProperties"] = [{"key": k, "value": v} for k, v in customer.properties.items()]
    return user


def history_item(message: HistoryMessage) -> dict[str, Any]:
    """One `history.messages` item: {authorType, text?, cards?} (cards pass through as the business gave them)."""
    item: dict[str, Any] = {"authorType": message.author_type}
    if message.text is not None:
        item["text"] = message.text
    if message.cards:
        item["cards"] = [card.wire() for card in message.cards]
    return item


def fiql_value(value: str) -> str:
    """A FIQL/RSQL argument: bare when it holds only unreserved characters, else double-quoted (RSQL) with `\\`
    escapes, so a `;` `,` `=` or `)` in a value can never add a clause to the filter."""
    if _FIQL_BARE.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ChatGatewayV1Client(ClientBase):
    api: ContactCenterApi = CHAT_GATEWAY_V1

    def __init__(
        self,
        base_url: str,
        tenant_id: str,
        api_key: Callable[[], str],
        *,
        timeout: float = 5.0,
        session: requests.Session | None = None,
    ) -> None:
        super().__init__(base_url, timeout, session)
        self.root = self.base_url + PREFIX
        self.tenant_id = tenant_id
        self.api_key = api_key

    def _call(self, method: str, path: str, operation: str, **kwargs: Any) -> requests.Response:
        # X-8x8-Tenant on every call, also where the OAS forgets to declare it (T25): a key serving several
        # tenants needs it, and a mismatch is a 403 we report as misconfiguration.
        headers = {"x-api-key": self.api_key(), "X-8x8-Tenant": self.tenant_id, "Accept": ACCEPT}
        # An API key cannot be refreshed: an operator must fix it.
        return super()._call(
            method, path, operation, unauthorized=ContactCenterMisconfigured, headers=headers, **kwargs
        )

    def create_conversation(self, conversation: NewConversation) -> str:
        body: dict[str, Any] = {
            "channelId": conversation.channel_id,
            "user": user_body(conversation.case_id, conversation.customer),
        }
        if conversation.routing is not None:
            body["assignment"] = {"type": conversation.routing.type, "id": conversation.routing.id}
        if conversation.history:
            body["history"] = {"messages": [history_item(m) for m in conversation.history]}
        return self._open_conversation(body)

    def send_message(self, conversation_id: str, text: str, author_type: str) -> None:
        self._post_message(conversation_id, {"authorType": author_type, "text": text})

    def send_rich_message(self, conversation_id: str, message: RichMessage) -> None:
        """A message with attachments (ids from upload_attachment) and/or cards ({contentType, content})."""
        if not message.text and not message.attachment_ids and not message.cards:
            raise InvalidRequest("a message needs text, an attachment or a card")
        body: dict[str, Any] = {"authorType": message.author_type}
        if message.text:
            body["text"] = message.text
        if message.attachment_ids:
            body["attachments"] = [{"id": attachment_id} for attachment_id in message.attachment_ids]
        if message.cards:
            body["cards"] = [dict(card) for card in message.cards]
        self._post_message(conversation_id, body)

    def upload_attachment(
        self, conversation_id: str, author_type: str, file_name: str, content_type: str, body: bytes | IO[bytes]
    ) -> str:
        """Upload a file to the conversation; returns the attachment id to reference in send_rich_message."""
        answer = self._call(
            "POST",
            self._conversation(conversation_id) + "/attachments",
            "upload_attachment",
            caller_input=True,
            files={"attachment": (file_name, body, content_type)},
            data={"authorType": author_type},
        )
        payload = http.json_body(answer)
        attachment_id = payload.get("id") if isinstance(payload, dict) else None
        if not isinstance(attachment_id, str) or not attachment_id:
            raise ContactCenterError(
                "8x8 accepted the attachment but sent no id", upstream_status=answer.status_code, ambiguous=True
            )
        return attachment_id

    def download_attachment(self, conversation_id: str, attachment_id: str) -> requests.Response:
        """GET …/attachments/{id}/content, streamed: the way to an agent's file once its pre-signed URL expired."""
        return self._call(
            "GET",
            self._conversation(conversation_id) + "/attachments/" + quote(attachment_id, safe="") + "/content",
            "download_attachment",
            stream=True,
        )

    def customer_leaves(self, conversation_id: str) -> None:
        self._leave("PATCH", conversation_id, "user", json={"removed": True})

    def route(self, conversation_id: str, routing: Routing) -> None:
        self._call(
            "PATCH",
            self._conversation(conversation_id),
            "route_conversation",
            caller_input=True,
            json={"assignment": {"type": routing.type, "id": routing.id}},
        )

    def update_customer(self, conversation_id: str, case_id: str, customer: Customer) -> None:
        self._call(
            "PATCH",
            self._conversation(conversation_id),
            "update_customer",
            caller_input=True,
            json={"user": user_body(case_id, customer)},
        )

    def find_conversation(self, case_id: str, channel_id: str) -> str | None:
        query = f"user.caseId=={fiql_value(case_id)};channelId=={fiql_value(channel_id)}"
        return self._find_conversation({"filter": query}, lambda payload: newest_match(payload, case_id, channel_id))

    def send_typing(self, conversation_id: str, author_type: str) -> None:
        self._call(
            "POST", self._conversation(conversation_id) + "/typing", "send_typing", json={"authorType": author_type}
        )

    def send_thinking(self, conversation_id: str, max_seconds: int = 60) -> None:
        body = {"authorType": "bot", "maxThinkingTimeSeconds": max(1, min(600, max_seconds))}
        self._call("POST", self._conversation(conversation_id) + "/thinking", "send_thinking", json=body)

    def send_read_receipt(self, conversation_id: str, author_type: str, read_at_ms: int) -> None:
        body = {"authorType": author_type, "readAt": read_at_ms}
        self._call("POST", self._conversation(conversation_id) + "/read-receipt", "send_read_receipt", json=body)

    def assign_post_agent(
        self, conversation_id: str, webhook_id: str, max_total_minutes: int, user_timeout_minutes: int
    ) -> None:
        # The documented ranges (20-600, 10-300); notifyChannelWebhookIfExists is a string in 8x8's schema (T26).
        configuration = {
            "notifyChannelWebhookIfExists": "false",
            "maxTotalMinutes": max(20, min(600, max_total_minutes)),
            "userTimeoutInMinutes": max(10, min(300, user_timeout_minutes)),
        }
        path = self._conversation(conversation_id) + "/post-agent-assignment"
        body: dict[str, Any] = {"type": "webhook", "id": webhook_id, "configuration": configuration}
        try:
            self._call("POST", path, "assign_post_agent", json=body)
        except ContactCenterError as error:
            if error.upstream_status != 400:
                raise
            # ESCALATION.md §10.6: 8x8's own client sends these numbers as strings; ints first, strings on a 400.
            strings = {k: str(v) for k, v in configuration.items()}
            self._call("POST", path, "assign_post_agent", json={**body, "configuration": strings})


def newest_match(payload: Any, case_id: str, channel_id: str) -> str | None:
    """The last conversation in a HAL list that really is this case's on this channel (the filter is checked
    again here: a server that ignored it must not hand us another case's conversation)."""
    embedded = payload.get("_embedded") if isinstance(payload, dict) else None
    items = embedded.get("conversations") if isinstance(embedded, dict) else None
    found: list[tuple[str, str]] = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and is_case_conversation(item, "user", case_id, channel_id):
            created = item.get("createdAt")  # not in ConversationResult today; used if 8x8 sends it
            found.append((str(created) if isinstance(created, (str, int)) else "", str(item["id"])))
    if not found:
        return None
    # Stable sort: with no createdAt, 8x8's own order decides and the last one listed wins.
    return sorted(found, key=lambda pair: pair[0])[-1][1]
