"""The harness: how stanch's own processes are brought up on one machine, for
`stanch dev`, `stanch drill`, `stanch demo`, the tests and the benchmarks alike.

One copy of each: the executables of this environment (`binaries`), a free
loopback port (`ports`), a process started, killed, restarted and stopped with
its output in a log (`processes`), the Temporal dev server with stanch's search
attributes (`dev_server`), a stanch worker or gateway as a process
(`services`), whose worker is polling (`workers`), waiting for a condition or
a health check (`waiting`), and the small response plan tests and benchmarks
page against (`plans`).

It imports models, the client room and the stores, never the CLI."""
