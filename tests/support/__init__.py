"""What tests share, imported by name (`from stanch.testing.estate import VM1`):
the estate azuresim holds, response plans, the real stack, workflows a test
started, signed decisions, alerts, runbooks, paging receivers, an identity
provider and the chaos suite's parts. conftest.py holds only fixtures."""
