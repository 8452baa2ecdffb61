"""Code "about to be deployed" for the tests of `stanch runbook check` and of
stuck workflows: each module defines a changed runbook under the name of a
built-in one, as a team's new release would."""
