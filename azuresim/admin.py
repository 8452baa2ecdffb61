"""A small client for azuresim's admin API: what tests, drills and `stanch dev`
use to inject faults, read the journal and change the world."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import httpx


def trusting(ca_file: Path) -> ssl.SSLContext:
    """An SSL context that trusts azuresim's CA (and nothing else)."""
    return ssl.create_default_context(cafile=str(ca_file))


class SimAdmin:
    def __init__(self, url: str, ca_file: Path) -> None:
        self._http = httpx.Client(base_url=f"{url}/_admin", verify=trusting(ca_file), timeout=10)

    def fault(self, **fault: Any) -> dict[str, Any]:
        response = self._http.post("/faults", json=fault)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def faults(self) -> list[dict[str, Any]]:
        """The faults still armed, each with how many calls it has met (`fired`,
        counted when a call arrives, before any latency it adds)."""
        response = self._http.get("/faults")
        response.raise_for_status()
        faults: list[dict[str, Any]] = response.json()["faults"]
        return faults

    def clear_faults(self) -> None:
        self._http.delete("/faults").raise_for_status()

    def journal(self, since: int = 0) -> list[dict[str, Any]]:
        response = self._http.get("/journal", params={"since": since})
        response.raise_for_status()
        calls: list[dict[str, Any]] = response.json()["calls"]
        return calls

    def mutations(self, since: int = 0) -> list[dict[str, Any]]:
        return [c for c in self.journal(since) if c["mutation"]]

    def clear_journal(self) -> None:
        self._http.delete("/journal").raise_for_status()

    def state(self) -> dict[str, Any]:
        response = self._http.get("/state")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def amend(self, **world: Any) -> None:
        self._http.post("/world", json=world).raise_for_status()

    def close(self) -> None:
        self._http.close()
