"""Relative times as people read them (review: a page due in 12 s showed "(0s ago)")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stanch.models.duration import relative

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("offset", "said"),
    [
        (timedelta(seconds=12), "in 12s"),
        (timedelta(minutes=3, seconds=5), "in 3m"),
        (timedelta(hours=2), "in 2h"),
        (timedelta(milliseconds=400), "in 1s"),  # due, not yet past
        (timedelta(0), "0s ago"),
        (-timedelta(seconds=42), "42s ago"),
        (-timedelta(minutes=7), "7m ago"),
        (-timedelta(days=2, hours=1), "2d ago"),
    ],
)
def test_a_time_reads_as_past_or_future_from_now(offset: timedelta, said: str) -> None:
    assert relative(NOW + offset, now=NOW) == said


def test_no_time_reads_as_a_dash() -> None:
    assert relative(None) == "-"


def test_a_page_due_later_never_reads_as_sent_already() -> None:
    assert relative(datetime.now(UTC) + timedelta(minutes=5)).startswith("in ")
