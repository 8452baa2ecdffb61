"""HTTP: alert intake (and, later, the on-call API and dashboard)."""
