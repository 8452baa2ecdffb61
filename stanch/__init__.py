"""stanch: durable incident response and automated remediation for Azure,
on Temporal. Everything installs under this one name: `stanch.models`,
`stanch.workflows`, `stanch.activities`, `stanch.runbooks`, `stanch.stores`,
`stanch.client`, `stanch.gateway`, `stanch.harness`, `stanch.azuresim`,
`stanch.cli`, `stanch.worker`, and `stanch.testing` (the test kit a team's
runbook package uses: a pytest plugin of `stanch_*` fixtures). In a checkout
the rooms sit at the repository's top level (pyproject.toml maps them here);
`stanch.examples` carries the default azuresim world, the commented sample
policy and Azure Monitor's sample alerts. docs/architecture.md has the map."""
