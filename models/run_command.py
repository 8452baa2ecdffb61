"""Diagnostic scripts run on a VM through Azure Run Command, kept as evidence.

Only the scripts named here ever run: a runbook (or a binding's params) picks
one by name, and nothing from an alert becomes a command line. Each is
read-only and short: Run Command keeps only the last 4 KB of output, allows
one command at a time per VM, and runs as root / SYSTEM, so a script here is
reviewed like code (it is code).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel

from stanch.models.evidence import EvidenceRef

CommandId = Literal["RunShellScript", "RunPowerShellScript"]


class DiagnosticScript(BaseModel):
    name: str
    command_id: CommandId
    script: list[str]
    purpose: str


DIAGNOSTIC_SCRIPTS: dict[str, DiagnosticScript] = {
    s.name: s
    for s in [
        DiagnosticScript(
            name="linux-connections",
            command_id="RunShellScript",
            script=["ss -tunap 2>/dev/null | head -n 200"],
            purpose="open TCP/UDP connections and the processes holding them",
        ),
        DiagnosticScript(
            name="linux-processes",
            command_id="RunShellScript",
            script=["ps -eo pid,ppid,user,%cpu,%mem,etime,args --sort=-%cpu | head -n 40"],
            purpose="the busiest processes",
        ),
        DiagnosticScript(
            name="linux-disk",
            command_id="RunShellScript",
            script=["df -hP", "df -iP"],
            purpose="disk and inode use per file system",
        ),
        DiagnosticScript(
            name="linux-auth-failures",
            command_id="RunShellScript",
            script=[
                "journalctl -q --no-pager -n 100 _COMM=sshd 2>/dev/null "
                "|| tail -n 100 /var/log/auth.log 2>/dev/null"
            ],
            purpose="recent SSH sign-in messages",
        ),
        DiagnosticScript(
            name="windows-connections",
            command_id="RunPowerShellScript",
            script=[
                "Get-NetTCPConnection | Sort-Object State | Select-Object -First 200 "
                "LocalAddress,LocalPort,RemoteAddress,RemotePort,State,OwningProcess "
                "| Format-Table -AutoSize | Out-String -Width 200"
            ],
            purpose="open TCP connections and the processes holding them",
        ),
        DiagnosticScript(
            name="windows-processes",
            command_id="RunPowerShellScript",
            script=[
                "Get-Process | Sort-Object CPU -Descending | Select-Object -First 40 "
                "Id,ProcessName,CPU,WorkingSet | Format-Table -AutoSize | Out-String -Width 200"
            ],
            purpose="the busiest processes",
        ),
    ]
}

_STEP = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


class DiagnosticRequest(BaseModel):
    """Run one named script on one VM for an incident. `step` keys the
    evidence (with the incident and the VM): a retry of the same step returns
    what the first run kept instead of running the script again."""

    incident_id: str
    resource_id: str  # a virtual machine
    script: str  # a name in DIAGNOSTIC_SCRIPTS
    step: str | None = None  # default: the script's name

    def evidence_name(self) -> str:
        vm = self.resource_id.rstrip("/").rsplit("/", 1)[-1]
        return f"{vm}.{self.step or self.script}.run-command.json"

    def checked(self) -> DiagnosticScript:
        """The script to run; ValueError naming the field otherwise."""
        known = DIAGNOSTIC_SCRIPTS.get(self.script)
        if known is None:
            raise ValueError(
                f"script: {self.script[:80]!r} is not a diagnostic script stanch knows "
                f"(known: {', '.join(sorted(DIAGNOSTIC_SCRIPTS))})"
            )
        if self.step is not None and not _STEP.fullmatch(self.step):
            raise ValueError(
                f"step: {self.step[:80]!r} must be lower-case letters, digits and dashes"
            )
        if not re.fullmatch(r"[A-Za-z0-9-]{1,40}", self.incident_id):
            raise ValueError(f"incident_id: {self.incident_id[:80]!r} is not an incident id")
        return known


class DiagnosticEvidence(EvidenceRef):
    """The kept output: an evidence reference (its SHA-256 goes to the audit
    trail like any evidence) plus how the script ended."""

    script: str
    resource_id: str
    status: str | None = None  # Azure's code, e.g. ProvisioningState/succeeded
    reused: bool = False  # True: a retry found the evidence and ran nothing

    def summary_line(self) -> str:
        how = "kept from an earlier run" if self.reused else (self.status or "done")
        return f"{self.script}: {how}; {super().summary_line()}"
