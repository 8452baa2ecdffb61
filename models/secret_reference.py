"""Secrets in the policy file (API tokens, the OIDC client secret, webhook
URLs) are written as `${NAME}` and taken from the environment, so the file can
live in git. Resolution fails closed: an unset variable is an error, never the
literal text `${NAME}` (which anyone reading the file could then present as a
token). Only the exact form `${NAME}` is a reference; any other value holding
a `$` is refused rather than guessed at, and a value without one is literal.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class UnresolvedSecret(ValueError):
    """A secret that cannot be used; the message names the variable, never a value."""


def resolve_secret(raw: str, environ: Mapping[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    reference = _REFERENCE.fullmatch(raw)
    if reference is not None:
        value = environ.get(reference.group(1))
        if value is None:
            raise UnresolvedSecret(f"{raw} is not set")
        if not value.strip():
            raise UnresolvedSecret(f"{raw} is set but empty")
        return value
    if "$" in raw:
        named = ", ".join(dict.fromkeys(_REFERENCE.findall(raw))) or "no ${NAME}"
        raise UnresolvedSecret(
            f"holds a '$' but is not exactly ${{NAME}} ({named}): put the whole value "
            "in one environment variable"
        )
    return raw


def is_reference(raw: str) -> bool:
    """Whether the file holds a variable's name rather than the secret itself."""
    return _REFERENCE.fullmatch(raw) is not None
