"""What ARM refuses in the body of a resource's PUT or PATCH before anything is
written: a body that is not a JSON object, a `properties`, `sku` or `tags` of
the wrong shape, a scale set capacity that is not a count of instances.

azuresim used to keep whatever it was sent and answer it back on every read
(a scale set of capacity "many", or -1), which Azure's specification refuses
(`Sku.capacity` is an int64) and Azure itself answers with a 400 naming the
field. A caller that sends such a body gets the same 400 here, and the
resource is left as it was.
"""

from __future__ import annotations

from typing import Any

from stanch.azuresim.errors import ArmError

SCALE_SETS = "microsoft.compute/virtualmachinescalesets"
# Azure's limit on the instances of one scale set (1,000; 100 for a scale set
# kept to a single placement group, which azuresim does not model).
MAX_SCALE_SET_CAPACITY = 1000


def checked_body(body: Any, rtype: str) -> dict[str, Any]:
    """The body of a PUT or PATCH of a resource of type `rtype` (lower-cased),
    or the 400 ARM answers it with. No body is an empty object, as on ARM."""
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise _invalid("the request body", "a JSON object", body)
    for name in ("properties", "sku", "tags"):
        if name in body and not isinstance(body[name], dict):
            raise _invalid(f"'{name}'", "a JSON object", body[name])
    for key, value in (body.get("tags") or {}).items():
        if not isinstance(value, str):
            raise _invalid(f"the value of tag '{key}'", "a string", value)
    if rtype == SCALE_SETS and "capacity" in (body.get("sku") or {}):
        _check_capacity(body["sku"]["capacity"])
    return body


def _check_capacity(capacity: Any) -> None:
    if not isinstance(capacity, int) or isinstance(capacity, bool):
        raise ArmError(
            400,
            "InvalidParameter",
            f"The value {capacity!r} of parameter 'sku.capacity' is not valid: "
            "it must be a whole number of virtual machines.",
        )
    if not 0 <= capacity <= MAX_SCALE_SET_CAPACITY:
        raise ArmError(
            400,
            "InvalidParameter",
            f"The value {capacity} of parameter 'sku.capacity' is out of range. "
            f"The value must be between 0 and {MAX_SCALE_SET_CAPACITY}, inclusive.",
        )


def _invalid(what: str, expected: str, got: Any) -> ArmError:
    kind = "null" if got is None else f"a JSON {type(got).__name__}"
    return ArmError(
        400,
        "InvalidRequestContent",
        f"The request content was invalid: {what} must be {expected}, got {kind}.",
    )
