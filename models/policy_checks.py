"""Checks of a policy file that pydantic cannot express: names given twice,
secrets that cannot be used, and choices that are allowed but risky.

Problems refuse the file (`stanch config check` exits 2; the gateway and the
worker do not start, or keep their last valid policy). Warnings are printed
by `stanch config check` and change nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from stanch.models.secret_reference import UnresolvedSecret, is_reference, resolve_secret

if TYPE_CHECKING:
    from stanch.models.config import StanchConfig


def _repeated(what: str, entries: Iterable[tuple[str, str | None]]) -> list[str]:
    """`path: what 'x' is also at <first path>` for each repeat of a value."""
    first: dict[str, str] = {}
    problems = []
    for path, value in entries:
        if value is None:
            continue
        if value in first:
            problems.append(f"{path}: {what} {value!r} is also {first[value]}")
        else:
            first[value] = path
    return problems


def duplicate_problems(config: StanchConfig) -> list[str]:
    """Two entries with one name: lookups would silently take one of them."""
    roster = list(enumerate(config.roster))
    return [
        *_repeated("person", ((f"roster[{i}].id", p.id) for i, p in roster)),
        *_repeated(
            "oidc_subject", ((f"roster[{i}].oidc_subject", p.oidc_subject) for i, p in roster)
        ),
        *_repeated(
            "channel", ((f"channels[{i}].name", c.name) for i, c in enumerate(config.channels))
        ),
        *_repeated(
            "service", ((f"services[{i}].name", s.name) for i, s in enumerate(config.services))
        ),
        *_repeated(
            "detector",
            ((f"detectors[{i}].name", d.name) for i, d in enumerate(config.detectors)),
        ),
    ]


def secret_problems(config: StanchConfig) -> list[str]:
    """Every secret resolved now, so that one that cannot be used stops the
    file at load, naming its path, rather than failing at the first request."""
    problems = []
    holder: dict[str, str] = {}  # token -> the path that holds it first
    for i, entry in enumerate(config.access.tokens):
        path = f"access.tokens[{i}].token"
        try:
            token = entry.usable()
        except UnresolvedSecret as e:
            problems.append(f"{path}: {e}")
            continue
        if token in holder:
            # Never the value: the message is printed and logged.
            problems.append(
                f"{path}: the same token as {holder[token]} (a token must name one person)"
            )
        else:
            holder[token] = path
    oidc = config.access.oidc
    if oidc is not None and oidc.client_secret is not None:
        try:
            resolve_secret(oidc.client_secret.get_secret_value())
        except UnresolvedSecret as e:
            problems.append(f"access.oidc.client_secret: {e}")
    for i, channel in enumerate(config.channels):
        if channel.type != "webhook":
            continue
        try:
            channel.resolved_url()
        except ValueError as e:
            reason = str(e).removeprefix(f"channel {channel.name}: ").removeprefix("url ")
            problems.append(f"channels[{i}].url: {reason}")
    return problems


def policy_warnings(config: StanchConfig) -> list[str]:
    """Allowed, but worth a second look."""
    warnings = []
    for i, entry in enumerate(config.access.tokens):
        if not is_reference(entry.token.get_secret_value()):
            warnings.append(
                f"access.tokens[{i}].token: written in the file; keep it in the "
                "environment and write ${NAME}"
            )
    for i, channel in enumerate(config.channels):
        if channel.type == "webhook" and not is_reference(channel.url.get_secret_value()):
            warnings.append(
                f"channels[{i}].url: written in the file; a chat webhook URL is its own "
                "credential, write ${NAME}"
            )
    oidc = config.access.oidc
    if oidc is None:
        return warnings
    if oidc.client_secret is not None and not is_reference(oidc.client_secret.get_secret_value()):
        warnings.append("access.oidc.client_secret: written in the file; write ${NAME}")
    if oidc.trust_mutable_names:
        warnings.append(
            f"access.oidc.trust_mutable_names: people without oidc_subject are matched by "
            f"{oidc.person_claim!r}, which can change hands (whoever is given that name or "
            f"email later signs in as them); give each person an oidc_subject "
            f"(their {oidc.subject_claim!r} claim) and turn this off"
        )
    else:
        for i, person in enumerate(config.roster):
            if person.oidc_subject is None:
                warnings.append(
                    f"roster[{i}]: {person.id} has no oidc_subject, so cannot sign in "
                    f"with access.oidc (matched by the {oidc.subject_claim!r} claim)"
                )
    return warnings
