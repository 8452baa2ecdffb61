"""How the CLI fails: exit 2 for anything the user can fix, with a message
that names the problem; exit 1 when the stack itself is unavailable."""

from __future__ import annotations


class UsageError(Exception):
    """Bad input: unknown incident, refused update, broken file. Exit code 2."""


class Unavailable(Exception):
    """Temporal or the gateway cannot be reached. Exit code 1."""
