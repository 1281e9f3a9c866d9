"""The business API's request bodies, as validated models (8x8's webhook events are parsed in contact_center/)."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

CASE_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
MAX_CUSTOMER_PROPERTIES = 30  # 8x8 caps the whole customer object, standard fields and caseId included
MAX_HISTORY_MESSAGES = 200
MAX_TEXT_LENGTH = 4096

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
