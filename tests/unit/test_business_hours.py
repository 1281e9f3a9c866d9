"""Business hours: the per-queue weekly schedule in its own time zone, holidays, and the document's checks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from casebridge.escalation.hours import ALWAYS_OPEN, ScheduleInvalid, parse_business_hours

LONDON_WEEKDAYS = {
    "queues": {
        "q-support": {
            "timeZone": "Europe/London",
            "weekly": {day: [["09:00", "17:30"]] for day in ("mon", "tue", "wed", "thu", "fri")},
            "holidays": ["2026-12-25"],
        }
    },
    "default": {"timeZone": "America/New_York", "weekly": {"sat": [["00:00", "24:00"]]}},
}


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("utc", "is_open"),
    [
        ("2026-07-06T08:00", True),  # Monday 09:00 BST (UTC+1): opens
        ("2026-07-06T07:59", False),  # 08:59 BST
        ("2026-07-06T16:29", True),  # 17:29 BST
        ("2026-07-06T16:30", False),  # 17:30 BST: the end is exclusive
        ("2026-01-05T08:30", False),  # Monday 08:30 GMT in winter: the same UTC hour is closed then
        ("2026-01-05T09:00", True),  # 09:00 GMT
        ("2026-12-25T12:00", False),  # a Friday, but a holiday
        ("2026-07-04T12:00", False),  # Saturday: no hours for the queue
    ],
)
def test_a_queue_opens_by_its_own_clock_with_daylight_saving_and_holidays(utc: str, is_open: bool) -> None:
    hours = parse_business_hours(LONDON_WEEKDAYS)
    assert hours.is_open("q-support", ms(utc)) is is_open


def test_queues_not_listed_follow_the_default_and_without_one_are_always_open() -> None:
    hours = parse_business_hours(LONDON_WEEKDAYS)
    assert hours.is_open("q-other", ms("2026-07-04T12:00"))  # Saturday in New York: open all day
    assert not hours.is_open("q-other", ms("2026-07-06T12:00"))  # Monday: the default has no Monday
    no_default = parse_business_hours({"queues": LONDON_WEEKDAYS["queues"]})
    assert no_default.is_open("q-other", ms("2026-07-06T03:00"))
    assert parse_business_hours("") is ALWAYS_OPEN
    assert ALWAYS_OPEN.is_open("anything", 0)


@pytest.mark.parametrize(
    ("document", "says"),
    [
        ("{not json", "not JSON"),
        ([], "must be a JSON object"),
        ({"queue": {}}, "unknown fields: queue"),
        ({"queues": {"q": {"weekly": {}}}}, "queues.q.timeZone is required"),
        ({"queues": {"q": {"timeZone": "Mars/Olympus", "weekly": {}}}}, "'Mars/Olympus' is not an IANA"),
        ({"queues": {"q": {"timeZone": "UTC", "weekly": {"monday": []}}}}, "unknown days: monday"),
        ({"queues": {"q": {"timeZone": "UTC", "weekly": {"mon": [["9:00", "17:00"]]}}}}, "queues.q.weekly.mon.0.0"),
        ({"queues": {"q": {"timeZone": "UTC", "weekly": {"mon": [["17:00", "09:00"]]}}}}, "ends (09:00) before"),
        ({"queues": {"q": {"timeZone": "UTC", "weekly": {"mon": [["09:00"]]}}}}, "must be [start, end]"),
        ({"queues": {"q": {"timeZone": "UTC", "weekly": {}, "holidays": ["25/12/2026"]}}}, "holidays.0"),
        ({"default": {"timeZone": "UTC"}}, "default.weekly is required"),
    ],
)
def test_a_bad_document_is_refused_with_the_place_it_is_wrong(document: Any, says: str) -> None:
    with pytest.raises(ScheduleInvalid) as refused:
        parse_business_hours(document)
    assert says in str(refused.value)


def test_the_hours_describe_themselves_for_the_closed_page() -> None:
    week = parse_business_hours(LONDON_WEEKDAYS).for_queue("q-support")
    assert week is not None
    described = week.describe()
    assert described["timeZone"] == "Europe/London"
    assert described["weekly"]["mon"] == [["09:00", "17:30"]]
    assert described["weekly"]["sun"] == []
    assert described["holidays"] == ["2026-12-25"]


# ---- checked at deploy (the custom resource's logic) ----------------------------------------------------------
def test_the_deploy_check_names_what_is_wrong(aws: None) -> None:
    import json  # noqa: PLC0415

    from tests.support.aws import aws_client  # noqa: PLC0415
    from tests.support.lambdas import load_function  # noqa: PLC0415

    check = load_function("business_hours_check").check
    assert check("") == "business-hours:none"
    with pytest.raises(ValueError, match="/hours/missing does not exist"):
        check("/hours/missing")
    ssm = aws_client("ssm")
    ssm.put_parameter(Name="/hours/bad", Type="String", Value=json.dumps({"default": {"timeZone": "Nowhere/X"}}))
    with pytest.raises(ScheduleInvalid, match="'Nowhere/X' is not an IANA time zone"):
        check("/hours/bad")
    ssm.put_parameter(Name="/hours/good", Type="String", Value=json.dumps(LONDON_WEEKDAYS))
    assert check("/hours/good") == "business-hours:/hours/good"
