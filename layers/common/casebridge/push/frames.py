"""What a push carries: the case event exactly as on the bus and the timeline, plus its place on the case's
timeline (`sequence`, and the `cursor` that `GET /cases/{id}/events?after=` and a reconnect take).

A WebSocket frame is one @connections post, and API Gateway refuses a post over 128 KB, on every retry. A timeline
entry can hold up to DynamoDB's 400 KB (an 8x8 text has no length limit), so `fit_frame` measures the frame as it
is sent and, when it is too large, sends the event with its text cut and marked the way the timeline marks a text
it cut (`textTruncated`, `textLength`), its cards dropped if they cannot fit (`cardsDropped`). The frame keeps its
`sequence` and `cursor`: order and resume are unchanged, and GET /cases/{id}/events has the entry as recorded.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from casebridge.business_api.views import event_view
from casebridge.errors import InvalidRequest
from casebridge.store.codec import SEQUENCE_PREFIX, decode_cursor
from casebridge.store.item_size import CARDS_DROPPED, TEXT_LENGTH, TEXT_TRUNCATED
from casebridge.store.records import TimelineEntry

# API Gateway's WebSocket "message payload size" quota is 128 KB (post_to_connection's Data). Read as 128,000
# bytes, not 131,072, and a little below: a frame measured to fit does fit, whichever way AWS counts a KB.
MAX_FRAME_BYTES = 127_000
OMITTED = "omitted"  # content left out of this frame that the timeline holds (the bus's mark for the same)

_SEQUENCE_KEY = re.compile(re.escape(SEQUENCE_PREFIX) + r"([0-9]{1,15})")


def entry_frame(entry: TimelineEntry, case_id: str) -> dict[str, Any]:
    """The event as on the timeline (it carries its `sequence` and `cursor`)."""
    return dict(event_view(entry, case_id))


def sequence_of_cursor(cursor: str) -> int:
    """The sequence a timeline cursor points at. InvalidRequest: not a cursor of a sequenced entry."""
    found = _SEQUENCE_KEY.fullmatch(decode_cursor(cursor))
    if found is None:
        raise InvalidRequest("'after' is not a cursor of an event this API pushed")
    return int(found.group(1))


def sequence_of(detail: dict[str, Any]) -> int:
    """The timeline sequence of a bus event; 0 for events that are not on the timeline (AgentTyping)."""
    sequence = detail.get("sequence")
    if isinstance(sequence, int) and sequence > 0:
        return sequence
    cursor = detail.get("cursor")
    if isinstance(cursor, str) and cursor:
        try:
            return sequence_of_cursor(cursor)
        except InvalidRequest:
            return 0
    return 0


def fit_frame(frame: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """The frame as it fits one post (MAX_FRAME_BYTES), and its bytes: unchanged when it fits. Else, as the
    timeline fits an entry to its item: cards that cannot fit even beside no text are dropped (`cardsDropped`),
    then the text is cut to what fits, at a whole character (`textTruncated: true`, `textLength` = the length of
    8x8's text, kept from the entry when the timeline cut it first). Attachments that cannot fit beside no text
    either (50 references with file names of 1,024 characters can) are left out, named in `omitted`. What is left
    (ids, names, 8x8's vocabulary) is bounded by the parsers to a few KB."""
    # Sent as UTF-8, not ASCII-escaped: an emoji takes 4 bytes, not 12. Escaped only when it holds a lone
    # surrogate, which JSON can carry as an escape and UTF-8 cannot carry at all (nothing casebridge records holds
    # one: the intake and DynamoDB refuse them; this only keeps such a post from failing).
    try:
        ascii_only, data = False, _encode(frame, False)
    except UnicodeEncodeError:
        ascii_only, data = True, _encode(frame, True)
    if len(data) <= MAX_FRAME_BYTES:
        return frame, data
    text = frame.get("text")
    text = text if isinstance(text, str) else ""

    def without_text(fields: dict[str, Any]) -> dict[str, Any]:
        if not text:
            return fields
        return {**fields, "text": "", TEXT_TRUNCATED: True, TEXT_LENGTH: fields.get(TEXT_LENGTH, len(text))}

    def fits(fields: dict[str, Any]) -> bool:
        return len(_encode(fields, ascii_only)) <= MAX_FRAME_BYTES

    fitted = dict(frame)
    cards = fitted.get("cards")
    if isinstance(cards, list) and not fits(without_text(fitted)):
        fitted = {k: v for k, v in fitted.items() if k != "cards"} | {CARDS_DROPPED: len(cards)}
    if "attachments" in fitted and not fits(without_text(fitted)):
        omitted = [*(fitted.get(OMITTED) or []), "attachments"]
        fitted = {k: v for k, v in fitted.items() if k != "attachments"} | {OMITTED: omitted}
    if text and not fits(fitted):
        cut = without_text(fitted)
        room = MAX_FRAME_BYTES - len(_encode(cut, ascii_only))
        cut["text"] = text[: _longest_prefix(text, room, ascii_only)]
        fitted = cut
    return fitted, _encode(fitted, ascii_only)


def _longest_prefix(text: str, room: int, ascii_only: bool) -> int:
    """How many characters of `text` take at most `room` bytes as a JSON string (quotes aside). Escapes make a
    character take 1 to 12 bytes, so the count is searched; every character takes one byte at least."""
    low, high = 0, min(len(text), max(room, 0))
    while low < high:
        middle = (low + high + 1) // 2
        if len(_encode(text[:middle], ascii_only)) - 2 <= room:
            low = middle
        else:
            high = middle - 1
    return low


def _encode(value: Any, ascii_only: bool) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=ascii_only, default=_plain).encode("utf-8")


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):  # DynamoDB's numbers
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
