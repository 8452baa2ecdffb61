"""An incident's timeline, bounded however long the incident lives.

The incident carries its timeline through every continue-as-new, so a timeline
that only grows (a flapping alert, a thousand long notes) would one day push
the carried input past Temporal's payload limit and wedge the incident. So the
timeline keeps three parts:

- the opening entries (the first `OPENING_KEPT`): when it fired, who was paged
  first; the postmortem's story starts there;
- one folded entry standing for everything between: how many entries of each
  kind, from when to when;
- the most recent entries: at most `RECENT_KEPT` and at most `RECENT_BYTES`.

Entries folded away are returned to the caller, which writes them whole to the
audit trail: the timeline is a summary, the audit trail is the record.

Pure and deterministic: no clock, no temporalio, so the workflow can call it
from any handler and tests run in microseconds.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from stanch.models.free_text import NOTE_LIMIT, bounded
from stanch.models.incident import TimelineEntry

OPENING_KEPT = 10
RECENT_KEPT = 200
RECENT_BYTES = 256 * 1024
# Fold in batches, so that adding an entry stays cheap: a fold runs only once
# the recent part is this far over its bounds, and takes it back under them.
FOLD_SLACK_ENTRIES = 50
FOLD_SLACK_BYTES = 64 * 1024
# A note is at most NOTE_LIMIT characters; its entry adds who wrote it.
SUMMARY_LIMIT = NOTE_LIMIT + 400
FOLDED = "folded"
FOLDED_KINDS_KEPT = 40  # kinds are the workflow's own words; a cap all the same
# What an entry costs in JSON besides its text: field names, a timestamp, the count.
ENTRY_OVERHEAD = 128


def entry(at: datetime, kind: str, summary: str, actor: str | None) -> TimelineEntry:
    """A new entry, its text cut to a bound a reader can see."""
    return TimelineEntry(at=at, kind=kind, summary=bounded(summary, SUMMARY_LIMIT), actor=actor)


def entry_bytes(e: TimelineEntry) -> int:
    """About what `e` weighs as JSON in a payload (UTF-8, so bytes, not characters)."""
    size = len(e.summary.encode()) + len(e.kind.encode()) + ENTRY_OVERHEAD
    if e.actor:
        size += len(e.actor.encode())
    if e.folded_kinds:
        size += sum(len(k.encode()) + 12 for k in e.folded_kinds)
    return size


class BoundedTimeline:
    """The timeline list, edited in place (the workflow and its queries hold
    the same list), with the bookkeeping that keeps adding an entry O(1)."""

    def __init__(self, entries: list[TimelineEntry]) -> None:
        self.entries = entries
        # Entries ever added in this run, counting the carried ones: ids
        # derived from it stay unique after entries are folded away.
        self.noted = len(entries)
        self._recent_bytes = sum(entry_bytes(e) for e in entries[self._recent_start() :])

    def add(self, e: TimelineEntry) -> bool:
        """Appends `e`; True when the recent part is over its bounds and
        `fold()` should run."""
        self.entries.append(e)
        self.noted += 1
        if len(self.entries) > OPENING_KEPT:
            self._recent_bytes += entry_bytes(e)
        return self.fold_due()

    def fold_due(self) -> bool:
        recent = len(self.entries) - self._recent_start()
        return (
            recent > RECENT_KEPT + FOLD_SLACK_ENTRIES
            or self._recent_bytes > RECENT_BYTES + FOLD_SLACK_BYTES
        )

    def fold(self, keep: int = RECENT_KEPT, keep_bytes: int = RECENT_BYTES) -> list[TimelineEntry]:
        """Folds the oldest recent entries into the folded entry until at most
        `keep` entries and `keep_bytes` remain after it; returns them, oldest
        first. The most recent entry always stays."""
        start = self._recent_start()
        recent = self.entries[start:]
        # Entries may have changed in place since they were added (a repeat
        # count): measure afresh rather than trust the running total.
        sizes = [entry_bytes(e) for e in recent]
        total = sum(sizes)
        cut = max(0, len(recent) - keep)
        total -= sum(sizes[:cut])
        while total > keep_bytes and cut < len(recent) - 1:
            total -= sizes[cut]
            cut += 1
        if cut == 0:
            self._recent_bytes = total
            return []
        folded = recent[:cut]
        summary = self._folded_entry()
        merged = _fold_into(summary, folded)
        if summary is None:
            self.entries[start : start + cut] = [merged]
        else:
            self.entries[start - 1 : start + cut] = [merged]
        self._recent_bytes = total
        return folded

    def shrink(self, by_bytes: int) -> list[TimelineEntry]:
        """Folds at least `by_bytes` more of the recent part, when the whole
        carried incident is over its budget."""
        start = self._recent_start()
        current = sum(entry_bytes(e) for e in self.entries[start:])
        return self.fold(keep_bytes=max(0, current - by_bytes))

    def _folded_entry(self) -> TimelineEntry | None:
        if len(self.entries) > OPENING_KEPT and self.entries[OPENING_KEPT].kind == FOLDED:
            return self.entries[OPENING_KEPT]
        return None

    def _recent_start(self) -> int:
        if len(self.entries) <= OPENING_KEPT:
            return len(self.entries)
        return OPENING_KEPT + (1 if self.entries[OPENING_KEPT].kind == FOLDED else 0)


def _fold_into(summary: TimelineEntry | None, folded: list[TimelineEntry]) -> TimelineEntry:
    kinds: Counter[str] = Counter(summary.folded_kinds if summary and summary.folded_kinds else {})
    for e in folded:
        kinds[e.kind] += e.count
    if len(kinds) > FOLDED_KINDS_KEPT:
        common = dict(kinds.most_common(FOLDED_KINDS_KEPT - 1))
        common["other"] = kinds.total() - sum(common.values())
        kinds = Counter(common)
    first = summary.at if summary else folded[0].at
    last = folded[-1].until or folded[-1].at
    count = kinds.total()
    return TimelineEntry(
        at=first,
        kind=FOLDED,
        summary=describe_folded(count, kinds, first, last),
        actor="stanch",
        count=count,
        folded_kinds=dict(sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))),
        until=last,
    )


def describe_folded(count: int, kinds: Counter[str], first: datetime, last: datetime) -> str:
    parts = ", ".join(f"{n:,} {kind}" for kind, n in kinds.most_common())
    return (
        f"{count:,} earlier events folded into this line ({parts}) "
        f"from {first:%Y-%m-%d %H:%M:%S}Z to {last:%Y-%m-%d %H:%M:%S}Z; "
        "each is whole on the audit trail"
    )


def audit_batches(folded: list[TimelineEntry], max_bytes: int) -> list[list[TimelineEntry]]:
    """`folded` in runs of at most `max_bytes` each (at least one entry per
    run), so each run fits one audit record and one activity payload."""
    batches: list[list[TimelineEntry]] = []
    size = 0
    for e in folded:
        cost = entry_bytes(e)
        if batches and size + cost <= max_bytes:
            batches[-1].append(e)
            size += cost
        else:
            batches.append([e])
            size = cost
    return batches
