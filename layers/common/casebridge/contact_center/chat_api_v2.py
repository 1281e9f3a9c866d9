"""ContactCenterClient for 8x8 Contact Center Chat API v2 (OAuth bearer token, /vcc/{region}/chat/v2)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import requests

from casebridge.contact_center import http
from casebridge.contact_center.tokens import AccessToken, TokenProvider
from casebridge.errors import ContactCenterAuthError, ContactCenterError
from casebridge.models import HistoryMessage


class ChatApiV2Client:
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
        self.base_url = base_url.rstrip("/")
        self.tenant_path = f"{self.base_url}/vcc/{region}/chat/v2/tenant/{tenant_id}"
        self.tokens = tokens
        self.timeout = timeout
        self.session = session or http.new_session()

    def _call(self, method: str, path: str, operation: str, **kwargs: Any) -> requests.Response:
        """Authenticated call; on 401 the token is refreshed once and the call retried once."""
        for attempt in (1, 2):
            token = self.tokens.get()
            try:
                return http.request(
                    self.session,
                    method,
                    self.tenant_path + path,
                    operation,
                    self.timeout,
                    headers={"Authorization": f"Bearer {token}"},
                    **kwargs,
                )
            except ContactCenterAuthError:
                self.tokens.invalidate(token)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def create_conversation(self, channel_id: str, customer: dict[str, str], history: Sequence[HistoryMessage]) -> str:
        body: dict[str, Any] = {"channelId": channel_id, "customer": customer}
        if history:
            body["history"] = {"messages": [{"text": m.text, "type": m.author_type} for m in history]}
        answer = self._call("POST", "/conversations", "create_conversation", json=body)
        try:
            conversation_id = answer.json()["conversationId"]
        except (ValueError, KeyError, TypeError) as error:
            raise ContactCenterError(
                "8x8 accepted the conversation but sent no conversationId", upstream_status=answer.status_code
            ) from error
        return str(conversation_id)

    def send_message(self, conversation_id: str, text: str, author_type: str) -> None:
        self._call(
            "POST",
            f"/conversations/{conversation_id}/messages",
            "post_message",
            json={"text": text, "authorType": author_type},
        )

    def customer_leaves(self, conversation_id: str) -> None:
        try:
            self._call("DELETE", f"/conversations/{conversation_id}/participants/customer", "customer_leaves")
        except ContactCenterError as error:
            if error.upstream_status != 404:  # already gone: leaving is idempotent
                raise


def token_fetcher(
    base_url: str,
    credentials: Callable[[], tuple[str, str]],
    *,
    timeout: float = 5.0,
    session: requests.Session | None = None,
    clock: Callable[[], float] = time.time,
) -> Callable[[], AccessToken]:
    """The OAuth client-credentials call. 8x8 sends expires_in as a string."""
    own_session = session or http.new_session()

    def fetch() -> AccessToken:
        api_key, api_secret = credentials()
        answer = http.request(
            own_session,
            "POST",
            f"{base_url.rstrip('/')}/oauth/v2/token",
            "token",
            timeout,
            auth=(api_key, api_secret),
            data={"grant_type": "client_credentials"},
        )
        try:
            body = answer.json()
            lifetime_s = int(str(body.get("expires_in", "0")))
            return AccessToken(str(body["access_token"]), int(clock() * 1000) + lifetime_s * 1000)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ContactCenterError(
                "8x8 token answer is not understood", upstream_status=answer.status_code
            ) from error

    return fetch
