"""stanch's pytest plugin (entry point `pytest11: stanch`), loaded wherever
stanch is installed: the fixtures a team's runbook tests need, all prefixed
`stanch_` so that they never shadow a project's own.

- `stanch_env`: the time-skipping Temporal test server (session).
- `stanch_dev_server`: the Temporal dev server with stanch's search attributes (session).
- `stanch_world`: the azuresim world file: `@pytest.mark.stanch_world("path")`, else the
  `stanch_world` ini option, else the packaged default (paths relative to the rootdir).
- `stanch_sim`: azuresim serving that world, fresh for each test.
- `stanch_azure`: the worker's Azure SDK clients pointed at it.
- `stanch_policy`: the worker's stanch.yaml (scopes over the whole world); override to
  test your own.
- `stanch_worker`: a worker on `stanch_env` with stanch's and every installed runbook and
  activity (a `RunbookWorker`: `.start(...)`, `.approve(...)`, `.reject(...)`).
- `stanch_workflows`: the workflow classes that worker registers (for `replay_history`).
- `stanch_started`: what the test started, terminated when it ends.

Async fixtures run in the session's event loop: set `asyncio_default_test_loop_scope =
"session"` (and the fixture loop scope) in the project's pytest options, as
`stanch runbook new --package` does.
"""

from __future__ import annotations

# Before any Settings() is built: workers trust the test run's decision key.
import stanch.testing.decisions  # noqa: F401

try:
    import pytest_asyncio  # noqa: F401
except ImportError:  # pytest without pytest-asyncio: stanch's fixtures need it; stay out of the way
    pass
else:
    from stanch.testing.fixtures import (  # noqa: F401
        pytest_addoption,
        pytest_configure,
        stanch_azure,
        stanch_dev_server,
        stanch_env,
        stanch_policy,
        stanch_sim,
        stanch_started,
        stanch_worker,
        stanch_workflows,
        stanch_world,
    )
