"""Where tests point: azuresim's default world (WORLD) and the resources in it
(VM1 failing, VM2 healthy, NIC1, VMSS, SUB, RG, WORKSPACE), the sample alerts
(SAMPLES, DEMO_ALERT), as stanch.testing names them for every team."""

from typing import Any

from stanch.testing import estate


def __getattr__(name: str) -> Any:
    return getattr(estate, name)
