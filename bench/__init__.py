"""Benchmarks: `python -m bench [name ...] [--quick]` (see bench/__main__.py).

Each benchmark runs against a real Temporal dev server, stanch's worker and
gateway (and azuresim where Azure is involved) as separate processes, measures
a baseline in the same run against the same server, and prints a table of
medians over repeated runs with the ratio to that baseline. Results go into
docs/benchmarks.md; nothing here is a test.
"""
