"""The policy source (stores/policy.py): stanch.yaml read from disk, refused
with every problem named, and kept usable while someone is mid-edit."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import yaml

from stanch.models.config import ConfigError, FileChannel
from stanch.stores.audit import SqliteAuditLog
from stanch.stores.policy import PolicySource, load_config
from stanch.stores.policy_yaml import read_policy_yaml
from tests.support.plans import policy_file


def edit(path: Path, change: dict[str, object]) -> None:
    data = yaml.safe_load(path.read_text())
    data.update(change)
    path.write_text(yaml.safe_dump(data))


def test_a_broken_edit_keeps_the_last_valid_version_and_says_why(tmp_path: Path):
    path = policy_file(tmp_path)
    source = PolicySource(path)
    good, warning = source.current()
    assert warning is None

    edit(path, {"roster": [{"id": "alice", "name": "Alice"}]})  # bob and carol vanish
    kept, warning = source.current()
    assert kept == good
    assert warning is not None and "'bob' is not on the roster" in warning
    assert "using the last valid version of stanch.yaml" in warning

    with pytest.raises(ConfigError, match="'bob' is not on the roster"):
        PolicySource(path).current()  # a fresh worker has no valid version to fall back on


def test_each_policy_version_in_use_is_on_the_audit_trail_once(tmp_path: Path):
    path = policy_file(tmp_path)
    trail = SqliteAuditLog(tmp_path / "audit.db")
    source = PolicySource(path, trail)
    source.current()
    source.current()
    edit(path, {"incident": {"reopen_window": "1h"}})
    source.current()
    source.current()

    versions = [
        r["record"]["details"]["sha256"]
        for r in trail.records()
        if r["record"]["action"] == "configuration in use"
    ]
    assert versions[-1] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(versions) == len(set(versions)) == 2
    assert trail.verify() == []


def test_an_unchanged_file_is_not_parsed_again_and_each_caller_gets_its_own_copy(
    tmp_path: Path,
):
    path = policy_file(tmp_path)
    source = PolicySource(path)
    first, _ = source.current()
    first.roster.clear()  # a caller adjusting what it was given
    second, _ = source.current()
    assert second.roster, "one caller's change reached the next"
    assert second is not first

    # Parsed again as soon as the bytes differ, even within the same second
    # and at the same size (the cache is keyed by the content, not the clock).
    stat = path.stat()
    text = path.read_text()
    path.write_text(text.replace("15m", "20m", 1))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    edited, warning = source.current()
    assert warning is None and edited != second


def test_yaml_that_does_not_parse_is_named_by_line_and_column(tmp_path: Path):
    path = tmp_path / "stanch.yaml"
    path.write_text("roster:\n  - id: alice\n    name: [Alice\n")
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert refused.value.source == str(path)
    (problem,) = refused.value.problems
    assert problem.startswith("line 4, column 1:"), problem


def test_a_file_that_cannot_be_read_is_named(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"stanch\.yaml: cannot read"):
        load_config(tmp_path / "stanch.yaml")


def test_a_relative_file_sink_is_relative_to_the_policy_file_not_the_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    policy_dir = tmp_path / "policy"
    policy_dir.mkdir()
    path = policy_file(policy_dir, channels=[{"name": "pager", "type": "file", "path": "p.jsonl"}])
    monkeypatch.chdir(tmp_path)
    (channel,) = load_config(os.path.relpath(path)).channels
    assert isinstance(channel, FileChannel)
    assert channel.path == policy_dir.resolve() / "p.jsonl"


def test_a_key_given_twice_is_a_problem_but_a_merged_key_may_be_overridden():
    data, problems = read_policy_yaml(
        "base: &base\n  timeout: 5m\n  people: [alice]\n"
        "tier:\n  <<: *base\n  timeout: 10m\n"
        "tier:\n  people: [bob]\n"
    )
    assert data["tier"] == {"people": ["bob"]}, "what YAML alone would silently keep"
    assert problems == [
        "line 7: duplicate key 'tier' (first at line 4); YAML would silently keep only the last"
    ]
