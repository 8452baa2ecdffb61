"""Reading the policy file's YAML without losing a section to a repeated key.

PyYAML keeps the last of two equal keys in a mapping, so a second
`escalation_policies:` silently replaces the first (and who gets paged with
it). This loader notes every repeated key, at any depth, with the lines of
both, so the file is refused instead.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import yaml
from yaml.nodes import MappingNode

_MERGE = "tag:yaml.org,2002:merge"


class _DuplicateKeyLoader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[int, str]] = []  # (line, problem)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        if isinstance(node, MappingNode):  # else PyYAML raises its own error
            self._note_duplicates(node)
        return super().construct_mapping(node, deep=deep)

    def _note_duplicates(self, node: MappingNode) -> None:
        # Only keys written in this mapping: a key given here may override one
        # merged in with `<<`, which is what merging is for.
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                seen = first_line.get(key)
            except TypeError:  # an unhashable key: PyYAML refuses it itself
                continue
            line = key_node.start_mark.line + 1
            if seen is None:
                first_line[key] = line
            else:
                self.duplicates.append(
                    (
                        line,
                        f"line {line}: duplicate key {key!r} (first at line {seen}); "
                        "YAML would silently keep only the last",
                    )
                )


def read_policy_yaml(text: str) -> tuple[Any, list[str]]:
    """The document, and one problem per repeated key. Syntax errors raise
    `yaml.YAMLError` as `yaml.safe_load` does."""
    loader = _DuplicateKeyLoader(text)
    try:
        data = loader.get_single_data()
    finally:
        loader.dispose()
    return data, [problem for _, problem in sorted(loader.duplicates)]
