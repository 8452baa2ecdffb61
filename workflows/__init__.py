"""The durable lifecycle: incidents, escalation, and (later) the runbook kit."""
