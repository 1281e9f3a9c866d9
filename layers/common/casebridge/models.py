"""The business API's request bodies, the case view, and 8x8's webhook events, as validated models."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

CASE_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
MAX_CUSTOMER_PROPERTIES = 30  # 8x8 caps the whole customer object, standard fields and caseId included
MAX_HISTORY_MESSAGES = 200
MAX_TEXT_LENGTH = 4096
MAX_TIMESTAMP_MS = 253_402_300_799_999  # 9999-12-31: larger is no time, and DynamoDB keeps 38 digits at most

# 8x8 refuses blank text later (message → DLQ, history → 502): refuse it here, up front.
Text = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_LENGTH, pattern=r"\S")]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=256)]
PropertyKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")]
PropertyValue = Annotated[str, StringConstraints(max_length=1024)]
AuthorType = Literal["user", "bot"]
STANDARD_CUSTOMER_FIELDS = ("name", "email", "phone", "customerId", "company", "language")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Customer(_Strict):
    name: ShortText | None = None
    email: Annotated[str, StringConstraints(max_length=256, pattern=r"^[^@\s]+@[^@\s]+$")] | None = None
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9 ().-]{3,32}$")] | None = None
    customer_id: ShortText | None = Field(default=None, alias="customerId")
    company: ShortText | None = None
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[A-Z]{2})?$")] | None = None
    properties: dict[PropertyKey, PropertyValue] = Field(default_factory=dict)

    @field_validator("properties")
    @classmethod
    def _no_standard_keys(cls, value: dict[str, str]) -> dict[str, str]:
        clash = sorted(set(value) & {*STANDARD_CUSTOMER_FIELDS, "caseId"})
        if clash:
            raise ValueError(f"custom properties may not reuse standard field names: {', '.join(clash)}")
        return value

    @model_validator(mode="after")
    def _within_8x8_limit(self) -> Customer:
        standard = sum(1 for f in ("name", "email", "phone", "customer_id", "company", "language") if getattr(self, f))
        total = standard + 1 + len(self.properties)  # +1: caseId is always sent
        if total > MAX_CUSTOMER_PROPERTIES:
            raise ValueError(
                f"8x8 accepts at most {MAX_CUSTOMER_PROPERTIES} customer properties in all "
                f"(standard fields and caseId included); this request has {total}"
            )
        return self

    def standard_fields(self) -> dict[str, str]:
        """The standard fields that are set, under the business API's names (each 8x8 client maps them)."""
        values = {
            "name": self.name,
            "email": self.email,
            "phone": self.phone,
            "customerId": self.customer_id,
            "company": self.company,
            "language": self.language,
        }
        return {k: v for k, v in values.items() if v}

    def is_empty(self) -> bool:
        return not self.standard_fields() and not self.properties


class Routing(_Strict):
    """Where 8x8 routes the conversation (Chat Gateway `assignment`): a queue or a script, by 8x8 id."""

    type: Literal["queue", "script"]
    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]


class HistoryMessage(_Strict):
    author_type: AuthorType = Field(alias="authorType")
    text: Text


class OpenConversationRequest(_Strict):
    customer: Customer = Field(default_factory=Customer)
    routing: Routing | None = None
    history: list[HistoryMessage] = Field(default_factory=list, max_length=MAX_HISTORY_MESSAGES)
    channel_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,128}$")] | None = Field(
        default=None, alias="channelId"
    )


class PostMessageRequest(_Strict):
    text: Text
    author_type: AuthorType = Field(default="user", alias="authorType")
    client_message_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,128}$")] | None = Field(
        default=None, alias="clientMessageId"
    )


class CaseState(StrEnum):
    OPEN = "open"
    QUEUED = "queued"
    WITH_AGENT = "with_agent"
    AGENT_LEFT = "agent_left"
    CLOSED = "closed"


class WebhookEventType(StrEnum):
    QUEUED = "QUEUED"
    AGENT_JOINED = "AGENT_JOINED"
    AGENT_LEFT = "AGENT_LEFT"
    TRANSFER = "TRANSFER"
    TEXT = "TEXT"
    WEB_HOOK_VERIFY = "WEB_HOOK_VERIFY"


# The normalised names the business sees (EventBridge detail-type and timeline "type").
DETAIL_TYPES: dict[WebhookEventType, str] = {
    WebhookEventType.QUEUED: "Queued",
    WebhookEventType.AGENT_JOINED: "AgentJoined",
    WebhookEventType.AGENT_LEFT: "AgentLeft",
    WebhookEventType.TRANSFER: "Transferred",
    WebhookEventType.TEXT: "AgentMessage",
}


class WebhookEvent(BaseModel):
    """One Chat API v2 webhook event (notificationVersion v2.0). Unknown extra fields are kept."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    event_type: WebhookEventType = Field(alias="eventType")
    conversation_id: Annotated[str, StringConstraints(min_length=1, max_length=256)] = Field(alias="conversationId")
    timestamp: int = Field(ge=0, le=MAX_TIMESTAMP_MS)
    message_type: str | None = Field(default=None, alias="messageType")
    queue_id: str | int | None = Field(default=None, alias="queueId")
    queue_name: str | None = Field(default=None, alias="queueName")
    agent_id: str | int | None = Field(default=None, alias="agentId")
    agent_name: str | None = Field(default=None, alias="agentName")
    message: str | None = None

    @model_validator(mode="after")
    def _encodable(self) -> WebhookEvent:
        """JSON allows lone surrogates (\\ud800) that UTF-8 cannot carry: refuse them here, not in DynamoDB."""
        for value in (
            self.conversation_id,
            self.queue_id,
            self.queue_name,
            self.agent_id,
            self.agent_name,
            self.message,
            self.message_type,
        ):
            if isinstance(value, str):
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    raise ValueError("text fields must be valid Unicode (no lone surrogates)") from None
        return self

    @property
    def detail_type(self) -> str:
        return DETAIL_TYPES[self.event_type]

    def detail(self) -> dict[str, Any]:
        """The normalised fields shared by the timeline and the published event (ids as strings)."""
        fields: dict[str, Any] = {
            "queueId": None if self.queue_id is None else str(self.queue_id),
            "queueName": self.queue_name,
            "agentId": None if self.agent_id is None else str(self.agent_id),
            "agentName": self.agent_name,
            "text": self.message,
        }
        return {k: v for k, v in fields.items() if v is not None}
