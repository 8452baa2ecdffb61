"""Names what was done to an audit trail: which record, and what kind of tampering.

Pure functions over the rows of the store and the anchors kept outside it (the
signed checkpoints and the receipts in workflow histories). Each kind leaves
its own trace in a keyed chain:

- edited: a record's MAC fails, the record after it still links to it;
- inserted: a record's MAC fails and the record after it links past it;
- removed (from the middle): a record's link points at a hash no record has;
- truncated (removed from the end): the chain is sound, but an anchor vouches
  for a record beyond its end;
- reordered: a record links to a record other than the one before it;
- re-chained: a run of records whose links hold but whose MACs all fail (an
  edit, then every later hash recomputed without the key: with plain SHA-256,
  a guessed key, or by claiming the old unkeyed rule);
- rewritten: the chain is sound but an anchored record has another hash than
  the one anchored (re-chained by someone holding the key, or cut and written
  again).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from stanch.stores.audit.chain import (
    GENESIS,
    KEYED,
    UNKEYED,
    AuditRow,
    keyed_hash,
    unkeyed_hash,
)
from stanch.stores.audit.checkpoints import Checkpoint, DamagedLine

EDITED = "edited"
INSERTED = "inserted"
REMOVED = "removed"
TRUNCATED = "truncated"
REORDERED = "reordered"
RECHAINED = "re-chained"
REWRITTEN = "rewritten"
RENUMBERED = "renumbered"
CHECKPOINT = "checkpoint tampered"


@dataclass(frozen=True)
class Finding:
    seq: int  # the first record it concerns
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"record {self.seq}: {self.kind}: {self.detail}"


@dataclass(frozen=True)
class Anchor:
    """What something outside the database says record `seq` was."""

    seq: int
    hash: str
    source: str  # e.g. "checkpoint line 4", "the history of incident-… (activity 12)"
    key: str | None = None  # receipts know the append's idempotency key


def find_tampering(
    rows: Sequence[AuditRow], secret: bytes | None, keyed_from: int, anchors: Sequence[Anchor]
) -> list[Finding]:
    """Every finding, the first bad record first."""
    findings = _chain(rows, secret, keyed_from) + _anchored(rows, anchors)
    return sorted(findings, key=lambda f: f.seq)  # stable: the chain's own finding first


def checkpoint_findings(
    checkpoints: Sequence[Checkpoint], damaged: Sequence[DamagedLine], key_id: str
) -> list[Finding]:
    findings: list[Finding] = []
    for c in checkpoints:
        if not c.signed:
            why = (
                "it was made with another key (was audit.key replaced?)"
                if c.key_id and c.key_id != key_id
                else "it was forged or edited"
            )
            findings.append(
                Finding(c.seq, CHECKPOINT, f"checkpoint line {c.line} fails its MAC: {why}")
            )
    for d in damaged:
        findings.append(
            Finding(0, CHECKPOINT, f"checkpoint line {d.line} is not a checkpoint: {d.text!r}")
        )
    return findings


def _expected(row: AuditRow, secret: bytes | None, keyed_from: int) -> str | None:
    if row.version == UNKEYED:
        return unkeyed_hash(row.prev_hash, row.record) if row.seq < keyed_from else None
    if row.version == KEYED and secret is not None:
        return keyed_hash(secret, row.prev_hash, row.key, row.record)
    return None


def _span(first: int, last: int) -> str:
    return f"record {first}" if first == last else f"records {first}-{last}"


def _chain(rows: Sequence[AuditRow], secret: bytes | None, keyed_from: int) -> list[Finding]:
    n = len(rows)
    valid = [_expected(r, secret, keyed_from) == r.hash for r in rows]
    holder = {r.hash: i for i, r in enumerate(rows)}
    findings: list[Finding] = []
    before, last_seq, i = GENESIS, 0, 0
    while i < n:
        row = rows[i]
        if row.prev_hash == before and valid[i]:
            if row.seq != last_seq + 1:
                findings.append(
                    Finding(
                        last_seq + 1,
                        RENUMBERED,
                        f"the sequence jumps from {last_seq} to {row.seq} but the chain "
                        "runs on unbroken: records were renumbered",
                    )
                )
            before, last_seq, i = row.hash, row.seq, i + 1
            continue
        if row.prev_hash != before:
            j = holder.get(row.prev_hash)
            if j is not None and j != i:
                reordered = _reordered(rows)
                if reordered is not None:
                    finding, end = reordered
                    findings.append(finding)
                    before, last_seq, i = rows[_walk(rows)[end]].hash, rows[end].seq, end + 1
                    continue
            if valid[i]:
                findings.append(_removed(last_seq, row))
            else:
                findings.append(
                    Finding(row.seq, EDITED, "its content and its link no longer match its MAC")
                )
            before, last_seq, i = row.hash, row.seq, i + 1
            continue
        # Linked to the record before it, but its MAC fails: look at the whole run.
        k = i
        while k + 1 < n and rows[k + 1].prev_hash == rows[k].hash and not valid[k + 1]:
            k += 1
        after = k + 1
        run = rows[i:after]
        if after < n and rows[after].prev_hash == before:
            findings.append(
                Finding(
                    row.seq,
                    INSERTED,
                    f"{_span(row.seq, rows[k].seq)} {'is' if k == i else 'are'} not in the "
                    f"chain: record {rows[after].seq} follows record {last_seq} directly",
                )
            )
            last_seq, i = rows[k].seq, after
            continue
        if after < n and valid[after]:
            if rows[after].prev_hash == rows[k].hash:
                # The record after the run vouches for the run's last hash: each
                # record was edited in place, its hash left as it was.
                for r in run:
                    findings.append(Finding(r.seq, EDITED, "its content no longer matches its MAC"))
                before, last_seq, i = rows[k].hash, rows[k].seq, after
                continue
        if len(run) >= 2:
            findings.append(
                Finding(
                    row.seq,
                    RECHAINED,
                    f"record {row.seq} was edited and every later hash recomputed "
                    f"{_how(run, keyed_from)}: {_span(row.seq, rows[k].seq)} fail the key's MAC",
                )
            )
        else:
            recomputed = (
                f"and its hash recomputed {_how(run, keyed_from)}"
                if after < n or _how(run, keyed_from) != "without the key"
                else "(its content no longer matches its MAC)"
            )
            findings.append(Finding(row.seq, EDITED, f"record {row.seq} was edited {recomputed}"))
        if after < n and valid[after] and rows[after].prev_hash not in holder:
            # It still links to the original hash: a consequence, not a second finding.
            before, last_seq, i = rows[after].hash, rows[after].seq, after + 1
            continue
        before, last_seq, i = rows[k].hash, rows[k].seq, after
    return findings


def _how(run: Sequence[AuditRow], keyed_from: int) -> str:
    if any(r.version == UNKEYED and r.seq >= keyed_from for r in run):
        return f"by the old unkeyed rule (the trail is keyed from record {keyed_from})"
    if all(r.hash == unkeyed_hash(r.prev_hash, r.record) for r in run):
        return "with plain SHA-256"
    return "without the key"


def _removed(last_seq: int, row: AuditRow) -> Finding:
    if row.seq > last_seq + 1:
        gone = _span(last_seq + 1, row.seq - 1)
        return Finding(
            last_seq + 1,
            REMOVED,
            f"{gone} removed from the middle: record {row.seq} follows a record that is gone",
        )
    return Finding(
        row.seq,
        REMOVED,
        f"a record between {last_seq} and {row.seq} was removed from the middle "
        "(and the later ones renumbered): "
        f"record {row.seq} follows a record that is gone",
    )


def _walk(rows: Sequence[AuditRow]) -> list[int]:
    """The rows' indices in the order they were written, by following the links."""
    following = {r.prev_hash: i for i, r in enumerate(rows)}
    walk: list[int] = []
    link = GENESIS
    while link in following and len(walk) < len(rows):
        walk.append(following[link])
        link = rows[walk[-1]].hash
    return walk


def _reordered(rows: Sequence[AuditRow]) -> tuple[Finding, int] | None:
    walk = _walk(rows)
    moved = [p for p, index in enumerate(walk) if index != p]
    if not moved:
        return None
    first, end = moved[0], moved[-1]
    seqs = sorted(rows[walk[p]].seq for p in moved)
    window = walk[max(0, first - 1) : end + 2]
    order = ", ".join(str(rows[index].seq) for index in window)
    return (
        Finding(
            rows[first].seq,
            REORDERED,
            f"records {', '.join(map(str, seqs))} are out of order: the chain runs {order}",
        ),
        end,
    )


def _anchored(rows: Sequence[AuditRow], anchors: Sequence[Anchor]) -> list[Finding]:
    by_seq = {r.seq: r for r in rows}
    by_key = {r.key: r for r in rows}
    last = rows[-1].seq if rows else 0
    findings: list[Finding] = []
    beyond = [a for a in anchors if a.seq > last and (a.key is None or a.key not in by_key)]
    if beyond:
        furthest = max(beyond, key=lambda a: a.seq)
        findings.append(
            Finding(
                last + 1,
                TRUNCATED,
                f"removed from the end: the trail ends at record {last}, but "
                f"{furthest.source} vouches for record {furthest.seq}",
            )
        )
    rewritten: list[Anchor] = []
    for a in anchors:
        if a.seq < 1:
            continue  # the checkpoint of an empty trail
        if a.seq > last and (a.key is None or a.key not in by_key):
            continue
        row = by_key.get(a.key) if a.key is not None else by_seq.get(a.seq)
        if row is None:
            findings.append(
                Finding(
                    a.seq,
                    REMOVED,
                    f"record {a.seq} is gone from the middle; {a.source} vouches for it",
                )
            )
        elif row.seq != a.seq:
            findings.append(
                Finding(
                    min(row.seq, a.seq),
                    REORDERED,
                    f"{a.source} says its record was written as record {a.seq}; "
                    f"it is now record {row.seq}",
                )
            )
        elif row.hash != a.hash:
            rewritten.append(a)
    if rewritten:
        first = min(rewritten, key=lambda a: a.seq)
        findings.append(
            Finding(
                first.seq,
                REWRITTEN,
                f"record {first.seq} differs from the one {first.source} vouches for "
                f"({len(rewritten)} anchored record(s) differ): the trail was rewritten "
                "from here on, by someone holding the key or by cutting it and writing again",
            )
        )
    return findings
