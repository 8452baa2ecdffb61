"""The bounded timeline (workflows/timeline.py): pure, so thousands of entries in
milliseconds."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from stanch.models.incident import TimelineEntry
from stanch.workflows.timeline import (
    FOLD_SLACK_ENTRIES,
    FOLDED,
    OPENING_KEPT,
    RECENT_BYTES,
    RECENT_KEPT,
    SUMMARY_LIMIT,
    BoundedTimeline,
    audit_batches,
    entry,
    entry_bytes,
)

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def _at(i: int) -> datetime:
    return T0 + timedelta(seconds=i)


def _grow(
    timeline: BoundedTimeline, n: int, kind: str = "note", text: str = "x"
) -> list[TimelineEntry]:
    """Adds `n` entries the way the workflow does; returns what was folded away."""
    folded: list[TimelineEntry] = []
    for _ in range(n):
        i = timeline.noted
        if timeline.add(entry(_at(i), kind, f"{text} {i}", "alice")):
            folded += timeline.fold()
    return folded


def test_a_short_timeline_is_left_alone():
    timeline = BoundedTimeline([])
    assert _grow(timeline, RECENT_KEPT + FOLD_SLACK_ENTRIES) == []
    assert len(timeline.entries) == RECENT_KEPT + FOLD_SLACK_ENTRIES
    assert all(e.kind != FOLDED for e in timeline.entries)


def test_opening_entries_a_folded_summary_and_the_most_recent_entries_stay():
    timeline = BoundedTimeline([])
    folded = _grow(timeline, 30_000)
    entries = timeline.entries

    assert len(entries) <= OPENING_KEPT + 1 + RECENT_KEPT + FOLD_SLACK_ENTRIES
    assert [e.summary for e in entries[:OPENING_KEPT]] == [f"x {i}" for i in range(OPENING_KEPT)]
    summary = entries[OPENING_KEPT]
    assert summary.kind == FOLDED
    assert entries[-1].summary == "x 29999"  # the newest is never folded
    # Nothing lost: opening + folded + recent account for every entry, in order.
    recent = entries[OPENING_KEPT + 1 :]
    assert summary.count == len(folded) == 30_000 - OPENING_KEPT - len(recent)
    assert [e.summary for e in folded] == [
        f"x {i}" for i in range(OPENING_KEPT, summary.count + OPENING_KEPT)
    ]
    assert summary.folded_kinds == {"note": summary.count}
    assert summary.at == _at(OPENING_KEPT)
    assert summary.until == folded[-1].at
    assert f"{summary.count:,} earlier events folded" in summary.summary
    # Chronological order is kept around the folded entry.
    times = [e.at for e in entries]
    assert times == sorted(times)


def test_counts_by_kind_add_up_across_folds_and_repeat_counts_count():
    timeline = BoundedTimeline([])
    _grow(timeline, OPENING_KEPT)
    folded: list[TimelineEntry] = []
    for _ in range(3_000):
        for kind in ("alert_repeated", "reopened", "alert_resolved"):
            e = entry(_at(timeline.noted), kind, kind, "azure-monitor")
            if kind == "alert_repeated":
                e.count = 2
            if timeline.add(e):
                folded += timeline.fold()
    summary = timeline.entries[OPENING_KEPT]
    assert summary.folded_kinds is not None
    assert summary.folded_kinds == {
        kind: sum(e.count for e in folded if e.kind == kind)
        for kind in ("alert_repeated", "reopened", "alert_resolved")
    }
    assert summary.count == sum(e.count for e in folded)
    assert summary.folded_kinds["alert_repeated"] > summary.folded_kinds["reopened"]


def test_long_entries_are_bounded_by_bytes_not_only_by_count():
    timeline = BoundedTimeline([])
    _grow(timeline, 1_000, text="n" * 4_000)  # a thousand notes of the maximum size
    recent = timeline.entries[OPENING_KEPT + 1 :]
    weight = sum(entry_bytes(e) for e in recent)
    assert weight <= RECENT_BYTES + 64 * 1024
    assert len(recent) < RECENT_KEPT  # bytes, not the count, were the bound here
    assert timeline.entries[-1].summary.startswith("n" * 100)


def test_an_entry_over_the_bound_is_cut_with_a_visible_marker():
    e = entry(T0, "note", "y" * 100_000, "alice")
    assert len(e.summary) <= SUMMARY_LIMIT
    assert e.summary.endswith("chars]")
    assert "truncated" in e.summary


def test_shrink_folds_at_least_what_was_asked():
    timeline = BoundedTimeline([])
    _grow(timeline, 150, text="z" * 1_000)
    before = sum(entry_bytes(e) for e in timeline.entries[OPENING_KEPT:])
    folded = timeline.shrink(50_000)
    assert sum(entry_bytes(e) for e in folded) >= 50_000
    after = sum(entry_bytes(e) for e in timeline.entries[OPENING_KEPT + 1 :])
    assert after <= before - 50_000
    assert timeline.entries[-1].summary.startswith("z")


def test_a_carried_timeline_resumes_with_its_folded_entry():
    first = BoundedTimeline([])
    _grow(first, 1_000)
    carried = [TimelineEntry.model_validate_json(e.model_dump_json()) for e in first.entries]
    resumed = BoundedTimeline(carried)
    assert resumed.noted == len(carried)
    folded = _grow(resumed, 1_000)
    summary = resumed.entries[OPENING_KEPT]
    assert summary.kind == FOLDED
    assert sum(1 for e in resumed.entries if e.kind == FOLDED) == 1
    assert summary.count == first.entries[OPENING_KEPT].count + len(folded)
    assert summary.at == _at(OPENING_KEPT)


def test_adding_stays_cheap():
    timeline = BoundedTimeline([])
    started = time.perf_counter()
    _grow(timeline, 30_000)
    # Generous: a workflow activation must stay far below Temporal's 2 s
    # deadlock limit even on a loaded machine.
    assert time.perf_counter() - started < 5


def test_audit_batches_respect_the_byte_limit_and_keep_order():
    entries = [entry(_at(i), "note", "w" * (i % 7) * 500, "bob") for i in range(200)]
    batches = audit_batches(entries, 20_000)
    assert [e for batch in batches for e in batch] == entries
    assert all(sum(entry_bytes(e) for e in b) <= 20_000 for b in batches if len(b) > 1)
    huge = [entry(T0, "note", "h" * 4_000, "bob")]
    assert audit_batches(huge, 100) == [huge]
