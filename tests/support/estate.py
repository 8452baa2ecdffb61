"""Where tests point: azuresim's default world and the resources in it, as
stanch.testing names them for every team (one copy of the ids)."""

from __future__ import annotations

from stanch.testing.estate import (
    DEMO_ALERT,
    EXAMPLES,
    NIC1,
    RG,
    SAMPLES,
    SUB,
    VM1,
    VM2,
    VMSS,
    WORKSPACE,
    WORLD,
)

__all__ = [
    "DEMO_ALERT",
    "EXAMPLES",
    "NIC1",
    "RG",
    "SAMPLES",
    "SUB",
    "VM1",
    "VM2",
    "VMSS",
    "WORKSPACE",
    "WORLD",
]
