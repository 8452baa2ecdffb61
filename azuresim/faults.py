"""Faults injected per route, and the journal of every call received.

A fault matches a method and a regular expression searched in the decoded path
(case-insensitive). It fires for the next `times` matching calls (None: until
removed), each with `probability`. It can answer with a status (and
`Retry-After`), add latency before the normal answer, or drop the connection.
"""

from __future__ import annotations

import random
import re
import threading
import time
import uuid
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field


class Fault(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field must not arm a no-op

    path: str = ".*"
    method: str | None = None
    status: int | None = Field(default=None, ge=400, le=599)
    code: str | None = None
    message: str | None = None
    retry_after: int | None = Field(default=None, ge=0)
    latency_ms: int = Field(default=0, ge=0, le=120_000)
    drop: bool = False  # close the connection without answering
    # Handle the call, then drop the answer: the client cannot know it worked,
    # which is exactly what a retried mutation must survive.
    drop_after: bool = False
    times: int | None = Field(default=1, ge=1)
    probability: float = Field(default=1.0, gt=0, le=1)
    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:8])
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        return re.search(self.path, path, re.IGNORECASE) is not None

    def body(self) -> dict[str, Any]:
        code = self.code or {429: "TooManyRequests", 503: "ServiceUnavailable"}.get(
            self.status or 0, "InternalServerError" if (self.status or 0) >= 500 else "Injected"
        )
        return {"error": {"code": code, "message": self.message or f"azuresim fault {self.id}"}}


class FaultBook:
    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._random = random.Random(seed)

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def list(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def take(self, method: str, path: str) -> Fault | None:
        """The fault this call meets, if any, used up by one."""
        with self._lock:
            for fault in self._faults:
                if not fault.matches(method, path):
                    continue
                if fault.probability < 1 and self._random.random() >= fault.probability:
                    continue
                fault.fired += 1
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                return fault.model_copy()
        return None


class JournalSink(Protocol):
    """Where the journal is kept beyond the process (azuresim.persist)."""

    def append_call(self, call: dict[str, Any]) -> None: ...
    def clear_journal(self, seq: int) -> None: ...


class Journal:
    def __init__(
        self,
        calls: list[dict[str, Any]] | None = None,
        seq: int = 0,
        sink: JournalSink | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._calls: list[dict[str, Any]] = list(calls or [])
        self._seq = seq  # never reset: `since` stays meaningful across clears and restarts
        self._sink = sink

    def record(self, **call: Any) -> None:
        with self._lock:
            self._seq += 1
            call["seq"] = self._seq
            call["at"] = time.time()
            self._calls.append(call)
            if self._sink is not None:
                self._sink.append_call(call)

    def calls(self, since: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            return [c for c in self._calls if c["seq"] > since]

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()
            if self._sink is not None:
                self._sink.clear_journal(self._seq)
