"""README's `stanch dev` flag list is the one `stanch dev --help` prints
(review: it left out --metrics-port and --world), defaults included."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from stanch.cli.main import build_parser

README = Path(__file__).resolve().parents[2] / "README.md"


def dev_parser() -> argparse.ArgumentParser:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices["dev"]


def readme_flags() -> dict[str, str]:
    """Each flag of the README's paragraph, with the words in brackets after it."""
    text = README.read_text()
    start = text.index("`stanch dev` flags:")
    paragraph = text[start : text.index("It keeps", start)]
    return dict(re.findall(r"`(--[a-z-]+)`(?:\s+\(([^)]*)\))?", paragraph))


def test_the_readme_lists_every_flag_of_stanch_dev():
    printed = {
        option
        for action in dev_parser()._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }
    assert set(readme_flags()) == printed


def test_the_readme_gives_the_port_defaults_stanch_dev_uses():
    defaults = {a.option_strings[0]: a.default for a in dev_parser()._actions if a.option_strings}
    ports = {flag: said for flag, said in readme_flags().items() if flag.endswith("-port")}
    assert ports, "the README names the ports"
    for flag, said in ports.items():
        assert said.split(",")[0] == str(defaults[flag]), flag
