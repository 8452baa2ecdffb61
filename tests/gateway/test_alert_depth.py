"""The depth bound on an alert's body, at its edge: the walk over the parsed
body is skipped only when the body has too few brackets to nest that deep, so
brackets in text never let a deep body through and never refuse a shallow one."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stanch.gateway.app import MAX_ALERT_DEPTH, Problem, parse_alert
from tests.support.alerts import unique_alert


def _with_context(context: Any) -> bytes:
    body = unique_alert()
    body["data"]["alertContext"] = context
    return json.dumps(body).encode()


def _nested(levels: int) -> Any:
    value: Any = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def test_a_body_at_the_limit_is_accepted_and_one_deeper_refused():
    # The body itself is one level, data a second, alertContext a third.
    at_limit = _with_context(_nested(MAX_ALERT_DEPTH - 2))
    assert parse_alert(at_limit).data.alert_context is not None
    with pytest.raises(Problem) as refused:
        parse_alert(_with_context(_nested(MAX_ALERT_DEPTH - 1)))
    assert refused.value.status == 400 and "nested too deeply" in refused.value.message


def test_brackets_in_text_do_not_decide_either_way():
    shallow = _with_context({"text": "{[" * 200})  # many brackets, none nesting
    assert parse_alert(shallow).data.alert_context is not None
    # Deep, and with its brackets counted among others in text.
    deep = _with_context({"text": "{[" * 200, "deep": _nested(MAX_ALERT_DEPTH)})
    with pytest.raises(Problem):
        parse_alert(deep)
