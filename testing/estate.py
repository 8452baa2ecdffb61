"""azuresim's packaged default world (stanch.examples/world.yaml) and the
resources in it that tests act on: the same ids in stanch's own tests and in
a team's, wherever stanch is installed."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

EXAMPLES = Path(str(files("stanch.examples")))
WORLD = EXAMPLES / "world.yaml"
SAMPLES = EXAMPLES / "alerts"
# Resource Health says vm-web-1 is unavailable: the alert quarantine_vm answers.
DEMO_ALERT = EXAMPLES / "demo" / "vm-web-1-unavailable.json"

SUB = "00000000-0000-0000-0000-0000000000aa"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-web"
VM1 = f"{RG}/providers/Microsoft.Compute/virtualMachines/vm-web-1"  # failing
VM2 = f"{RG}/providers/Microsoft.Compute/virtualMachines/vm-web-2"  # healthy
NIC1 = f"{RG}/providers/Microsoft.Network/networkInterfaces/vm-web-1-nic"
VMSS = f"{RG}/providers/Microsoft.Compute/virtualMachineScaleSets/vmss-api"
WORKSPACE = "11111111-2222-3333-4444-555555555555"
