"""A file channel's `${STANCH_STATE_DIR}`: the shipped policy's pages follow
the state dir of the process reading it (stores/policy.file_sink)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stanch.stores.policy import file_sink


def test_the_state_dir_of_the_process_when_set(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("STANCH_STATE_DIR", str(tmp_path / "custom"))
    sink = file_sink(tmp_path / "policy" / "stanch.yaml", Path("${STANCH_STATE_DIR}/pages.jsonl"))
    assert sink == tmp_path / "custom" / "pages.jsonl"


def test_a_relative_state_dir_is_the_process_s_as_every_setting(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STANCH_STATE_DIR", "scratch/state")
    sink = file_sink(tmp_path / "policy" / "stanch.yaml", Path("${STANCH_STATE_DIR}/p.jsonl"))
    assert sink == tmp_path / "scratch" / "state" / "p.jsonl"


@pytest.mark.parametrize("unset", [None, ""])
def test_unset_it_is_dot_stanch_beside_the_policy(tmp_path: Path, monkeypatch, unset):
    if unset is None:
        monkeypatch.delenv("STANCH_STATE_DIR", raising=False)
    else:
        monkeypatch.setenv("STANCH_STATE_DIR", unset)
    sink = file_sink(tmp_path / "stanch.yaml", Path("${STANCH_STATE_DIR}/pages.jsonl"))
    assert sink == tmp_path / ".stanch" / "pages.jsonl"


def test_other_paths_are_as_before(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("STANCH_STATE_DIR", str(tmp_path / "custom"))
    policy = tmp_path / "stanch.yaml"
    assert file_sink(policy, Path("out/pages.jsonl")) == tmp_path / "out" / "pages.jsonl"
    assert file_sink(policy, Path("/var/pages.jsonl")) == Path("/var/pages.jsonl")
