"""What the audit trail refuses to keep: anything that looks like a credential.

The trail is kept for years and read by auditors, so a secret recorded there
outlives any rotation. The text rules are the logs' (models/redaction.py);
this adds what only a structured record has: values under secret-looking keys.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from stanch.models.redaction import redact

_SECRETISH = re.compile(
    r"secret|token|password|passwd|passphrase|^pwd$|api[_-]?key|private[_-]?key|"
    r"authorization|credential|cookie|connection[_-]?string|sig$",
    re.I,
)
_ACCOUNT_KEY = re.compile(
    r"((?:AccountKey|SharedAccessKey|SharedAccessSignature)=)[^;\s\"']+", re.I
)


def scrub(value: Any) -> Any:
    """Belt and braces: nothing that looks like a credential is ever recorded,
    neither under a secret-looking name nor inside free text (a note with a
    pasted bearer token, a URL with `?sig=`, a chat webhook, a connection
    string, or a value the process knows to be secret)."""
    if isinstance(value, dict):
        return {k: "***" if _secret_name(str(k)) else scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, str) and len(value) >= 8:  # nothing shorter passes for a secret
        text = redact(value)
        # An account key needs its `=`: most text has none, and the search cost
        # a quarter of the gateway's audit record per alert.
        return _ACCOUNT_KEY.sub(r"\1[redacted]", text) if "=" in text else text
    return value


@functools.lru_cache(maxsize=4096)
def _secret_name(key: str) -> bool:
    """Records reuse a handful of field names: each is judged once per process."""
    return _SECRETISH.search(key) is not None
