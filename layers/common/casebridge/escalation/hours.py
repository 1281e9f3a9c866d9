"""Business hours per queue: 8x8 offers no public schedule API (ESCALATION.md §3), so casebridge keeps its own.

One JSON document (an SSM parameter named by the template's BusinessHoursParameter) holds every queue's week:

    {"queues": {"<queueId>": {"timeZone": "Europe/London",
                              "weekly": {"mon": [["09:00", "17:30"]], "sat": [], ...},
                              "holidays": ["2026-12-25", "2026-12-26"]}},
     "default": {...the same shape, for queues not listed...}}

A day left out of `weekly` is closed; a queue with no entry and no `default` is always open, and so is every queue
when no parameter is configured. "24:00" ends a day. Hours are in the queue's own IANA time zone (daylight saving
included); holidays are local dates, closed all day. The document is checked at deploy (a custom resource) and
again when read: a bad one fails the deploy with the reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])|24:00")
MAX_DOCUMENT_BYTES = 64 * 1024  # an SSM advanced parameter's size; a standard one holds 4 KiB
MAX_SPANS_PER_DAY = 12
MAX_HOLIDAYS = 400


class ScheduleInvalid(ValueError):
    """The business-hours document does not have the documented shape; the message says where."""


@dataclass(frozen=True)
class WeeklyHours:
    zone: ZoneInfo
    # minutes since local midnight, [start, end) per weekday (0 = Monday)
    weekly: tuple[tuple[tuple[int, int], ...], ...]
    holidays: frozenset[date] = frozenset()

    def is_open(self, at_ms: int) -> bool:
        local = datetime.fromtimestamp(at_ms / 1000, tz=UTC).astimezone(self.zone)
        if local.date() in self.holidays:
            return False
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self.weekly[local.weekday()])

    def describe(self) -> dict[str, Any]:
        """The hours as the business API shows them (the chat page says when the queue opens)."""
        return {
            "timeZone": self.zone.key,
            "weekly": {
                day: [[_clock_text(s), _clock_text(e)] for s, e in spans]
                for day, spans in zip(DAYS, self.weekly, strict=True)
            },
            "holidays": sorted(d.isoformat() for d in self.holidays),
        }


@dataclass(frozen=True)
class BusinessHours:
    queues: Mapping[str, WeeklyHours] = field(default_factory=dict)
    default: WeeklyHours | None = None

    def for_queue(self, queue_id: str) -> WeeklyHours | None:
        """The queue's hours; None means always open."""
        return self.queues.get(queue_id, self.default)

    def is_open(self, queue_id: str, at_ms: int) -> bool:
        hours = self.for_queue(queue_id)
        return hours is None or hours.is_open(at_ms)


ALWAYS_OPEN = BusinessHours()


def _clock_text(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _minutes(value: Any, where: str) -> int:
    if not isinstance(value, str) or not _CLOCK.fullmatch(value):
        raise ScheduleInvalid(f'{where} must be a time "HH:MM" (00:00-24:00), not {value!r}')
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


def _week(spec: Any, where: str) -> WeeklyHours:
    if not isinstance(spec, dict):
        raise ScheduleInvalid(f"{where} must be an object with timeZone, weekly and holidays")
    unknown = set(spec) - {"timeZone", "weekly", "holidays"}
    if unknown:
        raise ScheduleInvalid(f"{where} has unknown fields: {', '.join(sorted(unknown))}")
    zone_name = spec.get("timeZone")
    if not isinstance(zone_name, str) or not zone_name:
        raise ScheduleInvalid(f"{where}.timeZone is required (an IANA time zone such as Europe/London)")
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleInvalid(f"{where}.timeZone {zone_name!r} is not an IANA time zone") from None
    weekly_spec = spec.get("weekly")
    if not isinstance(weekly_spec, dict):
        raise ScheduleInvalid(f"{where}.weekly is required: an object of days (mon..sun) to [[start, end], ...]")
    wrong_days = set(weekly_spec) - set(DAYS)
    if wrong_days:
        raise ScheduleInvalid(f"{where}.weekly has unknown days: {', '.join(sorted(wrong_days))} (use mon..sun)")
    weekly: list[tuple[tuple[int, int], ...]] = []
    for day in DAYS:
        spans_spec = weekly_spec.get(day, [])
        if not isinstance(spans_spec, list) or len(spans_spec) > MAX_SPANS_PER_DAY:
            raise ScheduleInvalid(f"{where}.weekly.{day} must be a list of at most {MAX_SPANS_PER_DAY} [start, end]")
        spans = []
        for index, span in enumerate(spans_spec):
            at = f"{where}.weekly.{day}.{index}"
            if not isinstance(span, list) or len(span) != 2:
                raise ScheduleInvalid(f"{at} must be [start, end]")
            start, end = _minutes(span[0], at + ".0"), _minutes(span[1], at + ".1")
            if start >= end:
                raise ScheduleInvalid(f"{at} ends ({span[1]}) before it starts ({span[0]})")
            spans.append((start, end))
        weekly.append(tuple(sorted(spans)))
    holidays_spec = spec.get("holidays", [])
    if not isinstance(holidays_spec, list) or len(holidays_spec) > MAX_HOLIDAYS:
        raise ScheduleInvalid(f"{where}.holidays must be a list of at most {MAX_HOLIDAYS} dates (YYYY-MM-DD)")
    holidays: set[date] = set()
    for index, value in enumerate(holidays_spec):
        try:
            if not isinstance(value, str) or len(value) != 10:
                raise ValueError
            holidays.add(date.fromisoformat(value))
        except ValueError:
            raise ScheduleInvalid(f"{where}.holidays.{index} must be a date YYYY-MM-DD, not {value!r}") from None
    return WeeklyHours(zone, tuple(weekly), frozenset(holidays))


def parse_business_hours(document: Any) -> BusinessHours:
    """The checked document (parsed JSON or its text); ScheduleInvalid says what is wrong. Empty: always open."""
    if isinstance(document, (str, bytes)):
        if len(document) > MAX_DOCUMENT_BYTES:
            raise ScheduleInvalid(f"the business-hours document is larger than {MAX_DOCUMENT_BYTES} bytes")
        if not document.strip():
            return ALWAYS_OPEN
        try:
            document = json.loads(document)
        except ValueError as error:
            raise ScheduleInvalid(f"the business-hours document is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise ScheduleInvalid("the business-hours document must be a JSON object with queues and/or default")
    unknown = set(document) - {"queues", "default"}
    if unknown:
        raise ScheduleInvalid(f"the business-hours document has unknown fields: {', '.join(sorted(unknown))}")
    queues_spec = document.get("queues", {})
    if not isinstance(queues_spec, dict):
        raise ScheduleInvalid("queues must be an object of queue id to hours")
    queues = {str(queue_id): _week(spec, f"queues.{queue_id}") for queue_id, spec in queues_spec.items()}
    default = _week(document["default"], "default") if document.get("default") is not None else None
    return BusinessHours(queues, default)
