"""The business API's request bodies, as validated models (8x8's webhook events are parsed in contact_center/)."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

MAX_CUSTOMER_PROPERTIES = 30  # 8x8 caps the whole customer object, standard fields and caseId included
MAX_HISTORY_MESSAGES = 200
MAX_TEXT_LENGTH = 4096

# 8x8 refuses blank text later (message → DLQ, history → 502): refuse it here, up front.
Text = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_LENGTH, pattern=r"\S")]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=256)]
PropertyKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")]
PropertyValue = Annotated[str, StringConstraints(max_length=1024)]
AuthorType = Literal["user", "bot"]
AttachmentId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
MAX_ATTACHMENT_IDS = 50
# Cards (GATEWAY.md §2.4): Adaptive Cards up to 1.6 and 8x8 quick replies, a few per message, small enough for
# one SQS message and one 8x8 request.
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
MAX_ADAPTIVE_CARD_VERSION = "1.6"
_ADAPTIVE_VERSION = re.compile(r"1\.[0-6]")
MAX_CARDS = 5
MAX_CARDS_BYTES = 28 * 1024
MAX_QUICK_REPLIES = 13
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


class Card(_Strict):
    """A card a bot sends (GATEWAY.md §2.4): an Adaptive Card (up to 1.6) or 8x8 quick replies. Shape checked
    here so 8x8 never refuses it after the message was accepted; `content` otherwise passes through as given."""

    content_type: Literal["application/vnd.microsoft.card.adaptive", "application/8x8.quick.replies"] = Field(
        alias="contentType"
    )
    content: dict[str, Any]

    @model_validator(mode="after")
    def _shape(self) -> Card:
        if self.content_type == ADAPTIVE_CARD:
            if self.content.get("type") != "AdaptiveCard":
                raise ValueError('an Adaptive Card needs content.type "AdaptiveCard"')
            version = self.content.get("version")
            if not isinstance(version, str) or not _ADAPTIVE_VERSION.fullmatch(version):
                raise ValueError(f"an Adaptive Card needs content.version 1.0 to {MAX_ADAPTIVE_CARD_VERSION}")
            body = self.content.get("body", [])
            if not isinstance(body, list):
                raise ValueError("an Adaptive Card's content.body must be a list")
            return self
        options = self.content.get("options")
        if not isinstance(options, list) or not 1 <= len(options) <= MAX_QUICK_REPLIES:
            raise ValueError(f"quick replies need content.options: 1 to {MAX_QUICK_REPLIES} options")
        for option in options:
            title = option.get("title") if isinstance(option, dict) else None
            data = option.get("data") if isinstance(option, dict) else None
            postback = data.get("postback") if isinstance(data, dict) else None
            if not isinstance(title, str) or not title.strip() or len(title) > 256:
                raise ValueError("each quick reply needs a title (1-256 characters)")
            if not isinstance(postback, str) or not postback or len(postback) > 1024:
                raise ValueError("each quick reply needs data.postback (1-1024 characters)")
        return self

    def wire(self) -> dict[str, Any]:
        """The card as 8x8 takes it: {contentType, content}."""
        return {"contentType": self.content_type, "content": self.content}


def _check_cards(author_type: str, cards: list[Card]) -> None:
    if not cards:
        return
    if author_type != "bot":
        raise ValueError("only bot messages may carry cards")
    size = len(json.dumps([c.wire() for c in cards], separators=(",", ":")).encode())
    if size > MAX_CARDS_BYTES:
        raise ValueError(f"cards take {size} bytes as JSON; at most {MAX_CARDS_BYTES} are allowed")


class HistoryMessage(_Strict):
    author_type: AuthorType = Field(alias="authorType")
    text: Text | None = None  # required unless the (bot) message carries cards
    cards: list[Card] = Field(default_factory=list, max_length=MAX_CARDS)

    @model_validator(mode="after")
    def _content(self) -> HistoryMessage:
        if self.text is None and not self.cards:
            raise ValueError("a history message needs text (or, from a bot, cards)")
        _check_cards(self.author_type, self.cards)
        return self


class OpenConversationRequest(_Strict):
    customer: Customer = Field(default_factory=Customer)
    routing: Routing | None = None
    history: list[HistoryMessage] = Field(default_factory=list, max_length=MAX_HISTORY_MESSAGES)
    channel_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,128}$")] | None = Field(
        default=None, alias="channelId"
    )


class PostMessageRequest(_Strict):
    text: Text | None = None  # required unless the message carries attachments or cards
    author_type: AuthorType = Field(default="user", alias="authorType")
    client_message_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,128}$")] | None = Field(
        default=None, alias="clientMessageId"
    )
    # casebridge attachment ids (POST /cases/{caseId}/attachments); the per-message limit is a stack setting,
    # checked when the message is accepted. This cap only bounds the request.
    attachments: list[AttachmentId] = Field(default_factory=list, max_length=MAX_ATTACHMENT_IDS)
    cards: list[Card] = Field(default_factory=list, max_length=MAX_CARDS)

    @model_validator(mode="after")
    def _content(self) -> PostMessageRequest:
        if self.text is None and not self.attachments and not self.cards:
            raise ValueError("a message needs text, attachments or (from a bot) cards")
        if len(set(self.attachments)) != len(self.attachments):
            raise ValueError("an attachment may appear once per message")
        _check_cards(self.author_type, self.cards)
        return self

    @property
    def is_rich(self) -> bool:
        return bool(self.attachments or self.cards)


class AttachmentUploadRequest(_Strict):
    """POST /cases/{caseId}/attachments: what the business is about to upload (limits checked by the stack)."""

    file_name: Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^/\\\x00-\x1f]+$")] = Field(
        alias="fileName"
    )
    content_type: Annotated[
        str, StringConstraints(max_length=127, pattern=r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+$")
    ] = Field(alias="contentType")
    size: int = Field(gt=0)


class TypingRequest(_Strict):
    author_type: AuthorType = Field(default="user", alias="authorType")
