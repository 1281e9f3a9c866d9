"""The business API's request bodies, as validated models (8x8's webhook events are parsed in contact_center/)."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta

MAX_CUSTOMER_PROPERTIES = 30  # 8x8 caps the whole customer object, standard fields and caseId included
MAX_HISTORY_MESSAGES = 200
MAX_TEXT_LENGTH = 4096

# Patterns end in \Z, not $: Python's $ also matches before a trailing newline ("abc\n" would pass).
# 8x8 refuses blank text later (message → DLQ, history → 502): refuse it here, up front.
Text = Annotated[str, Meta(min_length=1, max_length=MAX_TEXT_LENGTH, pattern=r"\S")]
ShortText = Annotated[str, Meta(min_length=1, max_length=256)]
PropertyKey = Annotated[str, Meta(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}\Z")]
PropertyValue = Annotated[str, Meta(max_length=1024)]
AuthorType = Literal["user", "bot"]
AttachmentId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,64}\Z")]
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

RequestModel = TypeVar("RequestModel", bound="_Strict")


class RequestInvalid(ValueError):
    """A request body that does not fit its model: `field` is the dotted path ("history.1.text", "body" for the
    whole body), `message` what is wrong there."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    @property
    def summary(self) -> str:
        """One sentence for a person: "text must contain at least one non-space character"."""
        name = "the request body" if self.field == "body" else self.field
        rule = self.message.startswith(("must ", "may ", "is "))
        return f"{name} {self.message}" if rule else f"{name}: {self.message}"


class FieldError(ValueError):
    """Raised by a model's own check to name the field within the model that is wrong (msgspec knows only the
    model's place in the body)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# msgspec names where an error is: "... - at `$.history[1].text`" or "... - at `key` in `$.customer.properties`".
_ERROR_AT = re.compile(r"^(?P<message>.*?)(?: - at (?:`key` in )?`\$(?P<path>[^`]*)`)?$", re.DOTALL)

# Every pattern a request model uses, in words: a refusal says what the value must look like, not the regex.
PATTERN_WORDS = {
    r"\S": "must contain at least one non-space character",
    r"^[A-Za-z][A-Za-z0-9_.-]{0,63}\Z": "must start with a letter and be at most 64 characters of A-Z a-z 0-9 _ . -",
    r"^[A-Za-z0-9_-]{1,64}\Z": "must be 1 to 64 characters of A-Z a-z 0-9 _ -",
    r"^[^@\s]+@[^@\s]+\Z": "must be an email address (name@domain, no spaces)",
    r"^\+?[0-9 ().-]{3,32}\Z": "must be a phone number: 3 to 32 of 0-9 space ( ) . -, optionally after a +",
    r"^[a-z]{2}(-[A-Z]{2})?\Z": "must be a language code such as en or en-US",
    r"^[A-Za-z0-9_.:-]{1,128}\Z": "must be 1 to 128 characters of A-Z a-z 0-9 _ . : -",
    r"^[A-Za-z0-9_-]{1,128}\Z": "must be 1 to 128 characters of A-Z a-z 0-9 _ -",
    r"^[A-Za-z0-9._:-]{1,128}\Z": "must be 1 to 128 characters of A-Z a-z 0-9 . _ : -",
    r"^[^/\\\x00-\x1f]+\Z": "must be a file name without slashes, backslashes or control characters",
    r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+\Z": "must be a media type such as image/png",
}
_JSON_TYPES = {
    "str": "a string",
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "object": "an object",
    "array": "a list",
    "null": "null",
}
# What a refused value was: a float where a whole number belongs is "a number with a fraction".
_GOT = {**_JSON_TYPES, "float": "a number with a fraction"}
_REGEX = re.compile(r"Expected `str` matching regex .*", re.DOTALL)
_LENGTH = re.compile(r"Expected `(?P<type>str|array|object)` of length (?P<op>[<>]=) (?P<n>\d+)")
_BOUND = re.compile(r"Expected `(?:int|float)` (?P<op>[<>]=?) (?P<n>-?[\d.]+)")
_TYPE = re.compile(r"Expected `(?P<expected>[^`]*)`, got `(?P<got>[^`]*)`")
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<name>[^`]*)`")
_MISSING = re.compile(r"Object missing required field `(?P<name>[^`]*)`")
_UNITS = {"str": ("characters", "character"), "array": ("items", "item"), "object": ("entries", "entry")}


def _parts(path: str) -> list[str]:
    return [p for p in re.split(r"[.\[\]]+", path) if p]


def _type_at(model: type[Any], parts: list[str], *, key: bool) -> Any:
    """The msgspec type at a path of wire names (list indexes and dict keys pass into item and value types)."""
    found: Any = msgspec.inspect.type_info(model)
    for part in parts:
        found = _unwrapped(found)
        if isinstance(found, msgspec.inspect.StructType):
            found = next((f.type for f in found.fields if f.encode_name == part), None)
        elif isinstance(found, msgspec.inspect.ListType | msgspec.inspect.DictType):
            found = found.item_type if isinstance(found, msgspec.inspect.ListType) else found.value_type
        else:
            return None
    found = _unwrapped(found)
    if key:  # a refused dict key: the key type's rule
        return _unwrapped(found.key_type) if isinstance(found, msgspec.inspect.DictType) else None
    return found


def _unwrapped(found: Any) -> Any:
    if isinstance(found, msgspec.inspect.Metadata):
        found = found.type
    if isinstance(found, msgspec.inspect.UnionType):  # X | None: the rule is X's
        found = next((t for t in found.types if not isinstance(t, msgspec.inspect.NoneType)), found)
    return found


def _in_words(message: str, rule: Any) -> str:
    """msgspec's message as the rule in words ("must be at most 4096 characters"); other messages (a model's
    own checks) are words already."""
    if _REGEX.fullmatch(message):
        pattern = rule.pattern if isinstance(rule, msgspec.inspect.StrType) else None
        return PATTERN_WORDS.get(pattern or "", "has the wrong format")
    if found := _LENGTH.fullmatch(message):
        n = int(found["n"])
        many, one = _UNITS[found["type"]]
        if found["op"] == "<=":
            verb = "be" if found["type"] == "str" else "have"
            return f"must {verb} at most {n} {one if n == 1 else many}"
        return "must not be empty" if n == 1 else f"must be at least {n} {many}"
    if found := _BOUND.fullmatch(message):
        words = {">=": "at least", ">": "greater than", "<=": "at most", "<": "less than"}[found["op"]]
        return f"must be {words} {found['n']}"
    if isinstance(rule, msgspec.inspect.LiteralType) and (
        message.startswith("Invalid enum value") or _TYPE.fullmatch(message)
    ):
        return "must be one of: " + ", ".join(str(v) for v in sorted(rule.values, key=str))
    if found := _TYPE.fullmatch(message):
        expected = [t.strip() for t in found["expected"].split("|") if t.strip() != "null"]
        wanted = " or ".join(_JSON_TYPES.get(t, t) for t in expected)
        return f"must be {wanted}, not {_GOT.get(found['got'], found['got'])}"
    return message


def validate(model: type[RequestModel], data: Any) -> RequestModel:
    """`data` (parsed JSON) as `model`, or RequestInvalid naming the first field that is wrong and its rule in
    words. msgspec, not pydantic: its import costs ~7 ms of a cold start, pydantic's ~70 ms."""
    try:
        return msgspec.convert(data, model)
    except msgspec.ValidationError as error:
        text = str(error)
        found = _ERROR_AT.match(text)
        assert found is not None  # the pattern matches any text
        message = found["message"]
        path = found["path"] or ""
        key = "`key` in" in text
        if named := _UNKNOWN.fullmatch(message) or _MISSING.fullmatch(message):
            # the field that should not be there, or should, is the one to name
            path = f"{path}.{named['name']}"
            message = "is not a known field" if named.re is _UNKNOWN else "is required"
        if isinstance(error.__cause__, FieldError):  # a model's own check (msgspec chains it as the cause)
            path = f"{path}.{error.__cause__.field}"
        parts = _parts(path)
        field_path = ".".join([*parts, "[key]"] if key else parts) or "body"
        raise RequestInvalid(field_path, _in_words(message, _type_at(model, parts, key=key))) from None


def to_json_data(request: msgspec.Struct) -> Any:
    """The request as JSON data under the business API's names, fields that are None left out."""
    return _without_none(msgspec.to_builtins(request))


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


class _Strict(msgspec.Struct, forbid_unknown_fields=True, frozen=True, rename="camel"):
    """A request body: unknown fields refused, fields named in camelCase on the wire. Subclasses restate
    frozen=True for mypy only (msgspec inherits the options)."""


class Customer(_Strict, frozen=True):
    name: ShortText | None = None
    email: Annotated[str, Meta(max_length=256, pattern=r"^[^@\s]+@[^@\s]+\Z")] | None = None
    phone: Annotated[str, Meta(pattern=r"^\+?[0-9 ().-]{3,32}\Z")] | None = None
    customer_id: ShortText | None = None
    company: ShortText | None = None
    language: Annotated[str, Meta(pattern=r"^[a-z]{2}(-[A-Z]{2})?\Z")] | None = None
    properties: dict[PropertyKey, PropertyValue] = {}

    def __post_init__(self) -> None:
        clash = sorted(set(self.properties) & {*STANDARD_CUSTOMER_FIELDS, "caseId"})
        if clash:
            raise FieldError("properties", f"custom properties may not reuse standard field names: {', '.join(clash)}")
        total = len(self.standard_fields()) + 1 + len(self.properties)  # +1: caseId is always sent
        if total > MAX_CUSTOMER_PROPERTIES:
            raise ValueError(
                f"8x8 accepts at most {MAX_CUSTOMER_PROPERTIES} customer properties in all "
                f"(standard fields and caseId included); this request has {total}"
            )

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


class Routing(_Strict, frozen=True):
    """Where 8x8 routes the conversation (Chat Gateway `assignment`): a queue or a script, by 8x8 id."""

    type: Literal["queue", "script"]
    id: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:-]{1,128}\Z")]


class Card(_Strict, frozen=True):
    """A card a bot sends (GATEWAY.md §2.4): an Adaptive Card (up to 1.6) or 8x8 quick replies. Shape checked
    here so 8x8 never refuses it after the message was accepted; `content` otherwise passes through as given."""

    content_type: Literal["application/vnd.microsoft.card.adaptive", "application/8x8.quick.replies"]
    content: dict[str, Any]

    def __post_init__(self) -> None:
        if self.content_type == ADAPTIVE_CARD:
            if self.content.get("type") != "AdaptiveCard":
                raise ValueError('an Adaptive Card needs content.type "AdaptiveCard"')
            version = self.content.get("version")
            if not isinstance(version, str) or not _ADAPTIVE_VERSION.fullmatch(version):
                raise ValueError(f"an Adaptive Card needs content.version 1.0 to {MAX_ADAPTIVE_CARD_VERSION}")
            body = self.content.get("body", [])
            if not isinstance(body, list):
                raise ValueError("an Adaptive Card's content.body must be a list")
            return
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

    def wire(self) -> dict[str, Any]:
        """The card as 8x8 takes it: {contentType, content}."""
        return {"contentType": self.content_type, "content": self.content}


Cards = Annotated[list[Card], Meta(max_length=MAX_CARDS)]


def _check_cards(author_type: str, cards: list[Card]) -> None:
    if not cards:
        return
    if author_type != "bot":
        raise ValueError("only bot messages may carry cards")
    size = len(json.dumps([c.wire() for c in cards], separators=(",", ":")).encode())
    if size > MAX_CARDS_BYTES:
        raise ValueError(f"cards take {size} bytes as JSON; at most {MAX_CARDS_BYTES} are allowed")


class HistoryMessage(_Strict, frozen=True):
    author_type: AuthorType
    text: Text | None = None  # required unless the (bot) message carries cards
    cards: Cards = []

    def __post_init__(self) -> None:
        if self.text is None and not self.cards:
            raise ValueError("a history message needs text (or, from a bot, cards)")
        _check_cards(self.author_type, self.cards)


class OpenConversationRequest(_Strict, frozen=True):
    customer: Customer = msgspec.field(default_factory=Customer)
    routing: Routing | None = None
    history: Annotated[list[HistoryMessage], Meta(max_length=MAX_HISTORY_MESSAGES)] = []
    channel_id: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,128}\Z")] | None = None
    # The escalation's options (casebridge.escalation): not part of the conversation 8x8 opens.
    when_unavailable: Literal["queue", "refuse"] | None = None
    on_queue_timeout: Literal["notify", "handback"] | None = None


class PostMessageRequest(_Strict, frozen=True):
    text: Text | None = None  # required unless the message carries attachments or cards
    author_type: AuthorType = "user"
    client_message_id: Annotated[str, Meta(pattern=r"^[A-Za-z0-9._:-]{1,128}\Z")] | None = None
    # casebridge attachment ids (POST /cases/{caseId}/attachments); the per-message limit is a stack setting,
    # checked when the message is accepted. This cap only bounds the request.
    attachments: Annotated[list[AttachmentId], Meta(max_length=MAX_ATTACHMENT_IDS)] = []
    cards: Cards = []

    def __post_init__(self) -> None:
        if self.text is None and not self.attachments and not self.cards:
            raise ValueError("a message needs text, attachments or (from a bot) cards")
        if len(set(self.attachments)) != len(self.attachments):
            raise ValueError("an attachment may appear once per message")
        _check_cards(self.author_type, self.cards)

    @property
    def is_rich(self) -> bool:
        return bool(self.attachments or self.cards)


class AttachmentUploadRequest(_Strict, frozen=True):
    """POST /cases/{caseId}/attachments: what the business is about to upload (limits checked by the stack)."""

    file_name: Annotated[str, Meta(min_length=1, max_length=255, pattern=r"^[^/\\\x00-\x1f]+\Z")]
    content_type: Annotated[str, Meta(max_length=127, pattern=r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+\Z")]
    size: Annotated[int, Meta(gt=0)]


class TypingRequest(_Strict, frozen=True):
    author_type: AuthorType | None = None  # typing: "user" when left out; thinking: the bot's only
    kind: Literal["typing", "thinking"] = "typing"

    def __post_init__(self) -> None:
        if self.kind == "thinking" and self.author_type == "user":
            raise ValueError('thinking is the bot\'s indicator: leave authorType out or send "bot"')


class ReadRequest(_Strict, frozen=True):
    """POST /cases/{caseId}/read: the customer (or bot) read the agent's messages up to readAt (default now)."""

    author_type: AuthorType = "user"
    read_at: Annotated[int, Meta(ge=0, le=253_402_300_799_999)] | None = None
