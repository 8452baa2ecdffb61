"""What `stanch runbook new NAME --package DIR` writes besides the runbook and
its test: a package of the team's own that stanch finds through its
`stanch.runbooks` entry point. Placeholders: __NAME__, __PACKAGE__ (the import
name), __DIST__ (the distribution), __STANCH__ (the stanch version it was made with)."""

from __future__ import annotations

PYPROJECT = """[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "__DIST__"
version = "0.1.0"
description = "Our stanch runbooks"
requires-python = ">=3.11"
dependencies = ["stanch>=__STANCH__"]

[project.optional-dependencies]
# pytest, pytest-asyncio and the time-skipping test server, for stanch.testing.
test = ["stanch[testing]>=__STANCH__", "ruff>=0.6"]

# How stanch finds these runbooks once the package is installed: a module
# contributes every runbook class defined in it. One line per runbook module.
[project.entry-points."stanch.runbooks"]
__NAME__ = "__PACKAGE__.__NAME__"

[tool.setuptools]
packages = ["__PACKAGE__"]

[tool.pytest.ini_options]
asyncio_mode = "auto"
# stanch's fixtures (a Temporal test server, a worker) live for the session.
asyncio_default_fixture_loop_scope = "session"
asyncio_default_test_loop_scope = "session"
testpaths = ["tests"]
# Your own azuresim world (default: the one stanch ships, examples/world.yaml):
# stanch_world = "tests/world.yaml"

[tool.ruff]
line-length = 100
target-version = "py311"

[tool.ruff.lint]
select = ["E", "F", "I", "B", "UP", "ASYNC", "RUF"]
"""

PACKAGE_INIT = '''"""Our stanch runbooks: each module holds runbook workflow classes, and
pyproject.toml's `stanch.runbooks` entry points name the modules."""
'''

CONFTEST = '''"""This package's own fixtures go here. stanch's come from its pytest plugin
(stanch.testing, loaded automatically wherever stanch is installed): stanch_env,
stanch_sim, stanch_worker, stanch_workflows, ... all named stanch_*.

To test against your own azuresim world, set `stanch_world` in pyproject.toml's
[tool.pytest.ini_options], or mark a test `@pytest.mark.stanch_world("tests/world.yaml")`."""
'''

REPLAY_TEST = '''"""Every history in tests/histories/ must replay against today's code: a change
that would break a run already in flight (waiting at its approval gate, say)
fails here, before it is deployed, and needs `workflow.patched`.

Record one with `stanch runbook record __NAME__ --to tests/histories`; before
a change to the runbook, keep the old recording under a new name beside it."""

from __future__ import annotations

from pathlib import Path

import pytest
from stanch.testing import recorded_histories, replay_history

HISTORIES = recorded_histories(Path(__file__).parent / "histories")
if not HISTORIES:
    pytest.skip(
        "no recorded history yet: stanch runbook record __NAME__ --to tests/histories",
        allow_module_level=True,
    )


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_history_replays(path: Path, stanch_workflows: list[type]) -> None:
    await replay_history(path, stanch_workflows)
'''

CI = """# Test every change; on main, check it against the runs in flight too.
name: runbooks
on:
  push:
  pull_request:

jobs:
  test:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - run: pip install -e '.[test]'
      - run: ruff check .
      - run: ruff format --check .
      - run: pytest -q
      # Replays the histories of the runbooks running in the deployment (and
      # recently closed) against this code: exit 1 names every instance the
      # change would break. Needs read access to the deployment's Temporal.
      - name: stanch runbook check
        if: github.ref == 'refs/heads/main'
        run: stanch runbook check
        env:
          STANCH_TEMPORAL_ADDRESS: ${{ vars.STANCH_TEMPORAL_ADDRESS }}
          STANCH_TEMPORAL_NAMESPACE: ${{ vars.STANCH_TEMPORAL_NAMESPACE }}
          STANCH_TEMPORAL_API_KEY: ${{ secrets.STANCH_TEMPORAL_API_KEY }}
"""

GITIGNORE = """__pycache__/
*.egg-info/
build/
dist/
.venv/
.stanch/
"""

README = """# __DIST__

Our runbooks for stanch: Temporal
workflows that respond to Azure alerts, tested against azuresim. stanch finds
them through this package's `stanch.runbooks` entry points (pyproject.toml)
once it is installed where stanch runs.

## Work on them

```sh
python -m venv .venv && . .venv/bin/activate
pip install -e '.[test]'        # stanch, its test plugin, pytest, ruff
stanch runbook list              # __NAME__ is listed, from __DIST__ 0.1.0
pytest -q                        # seconds: the time-skipping server skips the waits
ruff check . && ruff format --check .
```

`__PACKAGE__/__NAME__.py` is the runbook: a `Runbook` subclass with its spec
(name, risk, approval gates, the alerts it answers) and its procedure (`step`
to look, `act` to change, with an undo, `approval` to wait for people).
`tests/test___NAME__.py` runs it against azuresim with the `stanch_*` fixtures
of stanch's pytest plugin. stanch's guide, docs/authoring-runbooks.md, has the
verbs, the activities and the approval rules.

Another runbook: `stanch runbook new NAME --package .` refuses to overwrite, so
write the module beside this one and add its line under
`[project.entry-points."stanch.runbooks"]`.

## Change a runbook with runs in flight

Runs wait hours at their approval gates, so a deploy finds them mid-run, and
they replay against the new code. `tests/test_replay.py` replays every
recording in `tests/histories/`:

1. Before changing `__NAME__`, keep the current recording:
   `cp tests/histories/__NAME__.json tests/histories/__NAME___pre_<change>.json`.
2. Change it, behind `if workflow.patched("<change>"):` where it adds, removes
   or reorders a step, an act or a gate.
3. Record the new version: `stanch runbook record __NAME__ --to tests/histories`
   (writes `tests/histories/__NAME__.json`, nothing else), and commit both.
4. Before deploying, `stanch runbook check` (with `STANCH_TEMPORAL_ADDRESS` of the
   deployment) replays the runs actually in flight and names any this would break.

## Deploy and bind

Install this package on every stanch worker (`pip install __DIST__`), or put it
on the workers' path and name it in stanch.yaml (`runbook_packages: [__PACKAGE__]`).
Restart the workers, then bind the runbook to the alerts it answers in stanch.yaml:

```yaml
runbooks:
  - runbook: __NAME__
    match: {resource_types: ["microsoft.compute/virtualmachines"]}
    dry_run: true        # until you trust it: observe, record, change nothing
```

`stanch config check` refuses a binding to a runbook that is not installed, and
so do the worker and the gateway: an alert never runs another runbook instead.
"""
