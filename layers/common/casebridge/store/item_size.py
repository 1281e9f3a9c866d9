"""DynamoDB's 400 KB item limit for timeline entries: an item's size counted as DynamoDB documents it, and an
entry cut to fit when its content (an 8x8 text or cards of any length) would push it over.

DynamoDB counts an item as the UTF-8 bytes of every attribute name (map keys too) plus each value: a string's
UTF-8 bytes, a binary's bytes, 1 byte for a boolean or null, about 1 byte per two significant digits plus 1 for a
number, and 3 bytes for a list or map plus what it holds, 1 byte more per element. The count here rounds up
wherever DynamoDB's description is approximate, and the limit is read as 400,000 bytes (DynamoDB takes up to
409,600), so an item measured to fit does fit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from casebridge.store.records import TimelineEntry

MAX_ITEM_BYTES = 400_000
# Content that may be cut to fit, and how its cutting is marked on the entry (on the timeline and the bus).
TEXT_TRUNCATED = "textTruncated"  # true: `text` is the start of what 8x8 sent
TEXT_LENGTH = "textLength"  # the length of what 8x8 sent, in characters
CARDS_DROPPED = "cardsDropped"  # how many cards 8x8 sent: they are not on the entry


def attribute_size(value: Mapping[str, Any]) -> int:
    """The size of one serialised attribute value ({"S": ...}, {"M": {...}}, ...), without its name."""
    [(kind, inner)] = value.items()
    if kind == "S":
        return len(inner.encode("utf-8"))
    if kind == "N":
        return _number_size(inner)
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode("utf-8")) for s in inner)
    if kind == "NS":
        return sum(_number_size(n) for n in inner)
    if kind == "BS":
        return sum(len(b) for b in inner)
    if kind == "L":
        return 3 + sum(1 + attribute_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode("utf-8")) + attribute_size(v) for k, v in inner.items())
    raise ValueError(f"not a DynamoDB attribute value: {kind}")


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """A serialised item's size as DynamoDB counts it against MAX_ITEM_BYTES (rounded up)."""
    return sum(len(name.encode("utf-8")) + attribute_size(value) for name, value in item.items())


def _number_size(text: str) -> int:
    digits = "".join(c for c in text if c.isdigit()).strip("0")
    return len(digits) // 2 + 2  # DynamoDB: about one byte per two digits, plus one (rounded up here)


def fit_entry(
    entry: TimelineEntry, item_of: Callable[[TimelineEntry], Mapping[str, Mapping[str, Any]]]
) -> TimelineEntry:
    """The entry as it fits in one item (`item_of` makes its serialised item): unchanged when it fits. Else its
    cards are dropped when the item does not fit even without the text, then its text is cut to what fits, in
    whole characters; both marked. Everything else 8x8 sends is bounded by the parsers, well within the limit."""
    if item_size(item_of(entry)) <= MAX_ITEM_BYTES:
        return entry

    def size(detail: dict[str, Any]) -> int:
        return item_size(item_of(replace(entry, detail=detail)))

    detail = dict(entry.detail)
    text = detail.get("text")
    text = text if isinstance(text, str) else ""
    cut = {**detail, "text": "", TEXT_TRUNCATED: True, TEXT_LENGTH: detail.get(TEXT_LENGTH, len(text))}
    cards = detail.get("cards")
    if isinstance(cards, list) and size(cut if text else detail) > MAX_ITEM_BYTES:
        # Cards an item cannot hold even beside no text: dropped, so that the text (the message itself) stays.
        detail = {k: v for k, v in detail.items() if k != "cards"} | {CARDS_DROPPED: len(cards)}
        cut = {k: v for k, v in cut.items() if k != "cards"} | {CARDS_DROPPED: len(cards)}
        if size(detail) <= MAX_ITEM_BYTES:
            return replace(entry, detail=detail)
    if not text:
        return replace(entry, detail=detail)  # nothing more to cut: the write fails and the event is retried
    room = max(MAX_ITEM_BYTES - size(cut), 0)
    # The text counts as its UTF-8 bytes: cut there, dropping a character the cut would split.
    cut["text"] = text.encode("utf-8")[:room].decode("utf-8", errors="ignore")
    return replace(entry, detail=cut)
