"""Remediation runbooks, one per file. Every module here is discovered by
runbooks/registry.py; see docs/authoring-runbooks.md to write one."""
