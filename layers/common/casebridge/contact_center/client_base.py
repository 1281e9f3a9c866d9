"""What the two 8x8 clients do alike: one HTTP call under an API's own authentication, the conversation path,
reading the id of a conversation 8x8 opened, looking a case's conversation up, and a customer leaving."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import requests

from casebridge.contact_center import http
from casebridge.errors import ContactCenterError, ContactCenterMisconfigured


class ClientBase:
    def __init__(self, base_url: str, timeout: float, session: requests.Session | None) -> None:
        self.base_url = http.require_safe_base_url(base_url)
        self.timeout = timeout
        self.session = session or http.new_session()
        self.root = self.base_url  # where the API's paths start; each client sets its own

    def _call(
        self,
        method: str,
        path: str,
        operation: str,
        *,
        caller_input: bool = False,
        not_found: type[ContactCenterError] = ContactCenterError,
        **kwargs: Any,
    ) -> requests.Response:
        """One call; the clients add their authentication (headers, what a 401 means) in `kwargs`."""
        return http.request(
            self.session,
            method,
            self.root + path,
            operation,
            self.timeout,
            caller_input=caller_input,
            not_found=not_found,
            **kwargs,
        )

    @staticmethod
    def _conversation(conversation_id: str) -> str:
        return "/conversations/" + quote(conversation_id, safe="")

    def _open_conversation(self, body: dict[str, Any]) -> str:
        """POST /conversations and 8x8's id of the conversation it opened."""
        answer = self._call(
            "POST",
            "/conversations",
            "create_conversation",
            caller_input=True,
            not_found=ContactCenterMisconfigured,  # nothing exists yet but the channel: it is unknown
            creates=True,  # a 502/503/504 may come after 8x8 created it: ambiguous, looked up before a retry
            json=body,
        )
        payload = http.json_body(answer)
        conversation_id = payload.get("conversationId") if isinstance(payload, dict) else None
        if not isinstance(conversation_id, (str, int)) or isinstance(conversation_id, bool) or conversation_id == "":
            # 8x8 took the request, so the conversation may exist: ambiguous, look it up before creating again.
            raise ContactCenterError(
                "8x8 accepted the conversation but sent no conversationId",
                upstream_status=answer.status_code,
                ambiguous=True,
            )
        return str(conversation_id)

    def _post_message(self, conversation_id: str, body: dict[str, Any]) -> None:
        self._call(
            "POST",
            self._conversation(conversation_id) + "/messages",
            "post_message",
            caller_input=True,
            # A 502/503/504 may come after 8x8 took the message: ambiguous, so a duplicate its retry shows is counted.
            creates=True,
            json=body,
        )

    def _find_conversation(self, params: dict[str, str], pick: Callable[[Any], str | None]) -> str | None:
        """GET /conversations filtered by `params`; `pick` chooses from the answer. Not found is None."""
        try:
            answer = self._call("GET", "/conversations", "find_conversation", params=params)
        except ContactCenterError as error:
            if error.upstream_status == 404:
                return None
            raise
        return pick(http.json_body(answer))

    def _leave(self, method: str, conversation_id: str, participant: str, **kwargs: Any) -> None:
        """The customer leaves; already gone (404) is success: leaving is idempotent."""
        path = f"{self._conversation(conversation_id)}/participants/{participant}"
        try:
            self._call(method, path, "customer_leaves", **kwargs)
        except ContactCenterError as error:
            if error.upstream_status != 404:
                raise


def is_case_conversation(item: dict[str, Any], customer_key: str, case_id: str, channel_id: str) -> bool:
    """A listed conversation really is this case's on this channel (checked again after the server's filter:
    a server that ignored it must not hand us another case's conversation)."""
    customer = item.get(customer_key)
    conversation_id = item.get("id")
    return (
        isinstance(customer, dict)
        and str(customer.get("caseId")) == case_id
        and str(item.get("channelId")) == channel_id
        and isinstance(conversation_id, (str, int))
        and not isinstance(conversation_id, bool)
        and bool(str(conversation_id))
    )
