"""Where tests point: the repository's examples, and the resources of
azuresim's default world (examples/world.yaml) they act on."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
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
