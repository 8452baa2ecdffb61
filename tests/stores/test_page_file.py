"""The page file sink (stores/page_file.py): each key appended once, whatever
the file holds, read through an index that only looks at what is new."""

from __future__ import annotations

import json

from stanch.stores import page_file
from stanch.stores.page_file import PageFile, read_pages


def test_a_key_is_written_once_by_any_writer_of_the_file(tmp_path):
    """Two workers on one machine share the file: the second one's index
    catches up with what the first appended before it decides."""
    path = tmp_path / "pages.jsonl"
    assert read_pages(path) == [], "no file holds no pages"
    one, other = PageFile(path), PageFile(path)
    assert other.append_once("k0", {"to": "alice"})  # `other` indexes the file now
    assert one.append_once("k1", {"to": "bob"})
    assert other.append_once("k1", {"to": "bob"}) is False, "a retry landing elsewhere"
    assert [line["key"] for line in read_pages(path)] == ["k0", "k1"]
    assert path.stat().st_mode & 0o777 == 0o600, "pages name people: private from the first byte"


def test_damaged_lines_hold_no_key_and_a_partial_line_swallows_nothing(tmp_path):
    path = tmp_path / "pages.jsonl"
    damaged = b'not json\n[1, 2]\n{"key": 7}\n\xff\xfe\n{"key": "k1"}\n{"key": "k2", "to": "al'
    path.write_bytes(damaged)

    pages = PageFile(path)
    assert pages.append_once("k1", {}) is False, "the whole line after the damage still counts"
    assert pages.append_once("k2", {}) is True, "a partial line holds no key"
    assert path.read_bytes() == damaged + b'\n{"key": "k2"}\n', "nothing lost, nothing joined"
    assert [p["key"] for p in read_pages(path)] == [7, "k1", "k2"], "whole objects only"


def test_index_reads_only_the_recent_end_of_a_large_file(tmp_path, monkeypatch):
    """A retry comes within minutes, so only the last WINDOW bytes are read at
    first use; a window that starts mid-line skips that line whole."""
    monkeypatch.setattr(page_file, "WINDOW", 4096)
    path = tmp_path / "pages.jsonl"
    old = json.dumps({"key": "old", "pad": "x" * 10_000}).encode()
    recent = json.dumps({"key": "recent"}).encode()
    path.write_bytes(old + b"\n" + recent + b"\n")

    pages = PageFile(path)
    assert pages.append_once("recent", {}) is False  # found in the window
    assert pages.append_once("new", {}) is True
    assert pages.append_once("new", {}) is False
    assert [line["key"] for line in read_pages(path)] == ["old", "recent", "new"]


def test_a_rotated_page_file_is_indexed_afresh(tmp_path):
    path = tmp_path / "pages.jsonl"
    pages = PageFile(path)
    assert pages.append_once("k1", {})
    path.rename(tmp_path / "pages.jsonl.1")  # logrotate
    assert pages.append_once("k2", {})
    assert [line["key"] for line in read_pages(path)] == ["k2"]
    path.write_bytes(b"")  # truncated in place
    assert pages.append_once("k2", {})
    assert [line["key"] for line in read_pages(path)] == ["k2"]
