"""What request logging costs the gateway worker, in CPU instructions per request (callgrind): exact, not timed.

    python bench/logging_instructions.py [--requests 300,1300] [--modes off,file,file-inline]

``bench/logging_cost.py`` measures req/s, which on a small machine also moves with whatever shares the CPUs (the
log writer process shares the load generator's core on 2 CPUs). This script counts the instructions the gateway
worker itself executes, under valgrind's callgrind, for a fixed number of sequential requests on one keep-alive
connection; the same gateway setup as logging_cost.py (its ``--serve``), the same mock upstream. Each mode runs
twice, with the two request counts, and the difference divided by the difference in requests is the worker's
instructions per request — start-up and shutdown cancel out. The log writer process (``file``) runs natively,
outside callgrind: its cost is not the worker's, and logging_cost.py reports its CPU.

Time runs ~50x slower under valgrind (about 25 requests a second here), so everything the gateway does per unit
of time rather than per request — the hand-off tick, the writer's acks, batch ages — would be charged to far fewer
requests than at real speed. The intervals are stretched to match (:data:`STRETCHED`): a hand-off every 3 s, as
every 50 ms at ~1,300 req/s, so hand-offs go in full frames of 64 as they do under load; batches close at 500
records, as at real speed, not by age. Both modes get the same settings.

Slow: about a minute and a half per run. Needs ``valgrind`` (Debian package; ``make bench-logging`` installs it).
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import callgrind  # noqa: E402 - bench/ helpers
from processes import PYTHON, free_port  # noqa: E402
from servers import gateway_headers  # noqa: E402

#: Per-time intervals stretched like the clock under valgrind (see the module docstring).
STRETCHED = {"SKYRELAY_LOG_HANDOFF_INTERVAL_S": "3", "SKYRELAY_LOG_BATCH_MAX_AGE_S": "60"}


def instructions(mode: str, requests: int, mock_port: int, workdir: Path) -> int:
    """Total instructions of one gateway worker run that answered WARMUP + ``requests`` requests."""
    import logging_cost

    port = free_port()
    tag = f"{mode}-{requests}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYRELAY_")}
    env.update({"SKYRELAY_LOG_SINK": f"file://{workdir / ('sink-' + tag)}",
                "SKYRELAY_LOG_SPILL_DIR": str(workdir / f"spill-{tag}"), "PYTHONPATH": str(BENCH_DIR.parent),
                **STRETCHED, **logging_cost.MODES[mode]})
    argv = [PYTHON, str(BENCH_DIR / "logging_cost.py"), "--serve", mode, "--port", str(port)]

    def check(i: int, answer: http.client.HTTPResponse) -> None:
        if answer.status != 200:
            raise RuntimeError(f"{mode}: request {i} answered {answer.status}")

    return callgrind.instructions(argv, env, workdir / f"callgrind-{tag}.out", workdir / f"{tag}.stderr", port,
                                  gateway_headers(mock_port), requests, check)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", default="300,1300", help="the two request counts (difference = counted)")
    parser.add_argument("--modes", default="off,file,file-inline", help="logging_cost.py modes; off is the base")
    args = parser.parse_args(argv)
    low, high = (int(n) for n in args.requests.split(","))
    modes = [m for m in args.modes.split(",") if m]
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not installed (apt-get install valgrind)")
    if "off" not in modes or high <= low:
        parser.error("--modes must include off, and the second request count must be the larger")
    per_request = callgrind.per_request(modes, low, high, instructions, "skyrelay-loginstr-")
    base = per_request["off"]
    print(f"gateway worker instructions per request (callgrind, {high - low} requests counted, sequential, one "
          "keep-alive connection, minimal path: provider headers + request logs to a file sink)")
    for mode, count in per_request.items():
        cost = "" if mode == "off" else f"  {(count / base - 1) * 100:+.1f}% vs off"
        print(f"  {mode:14} {count:12,.0f}{cost}")
    print("file = the log writer process (its own instructions are not counted: it runs on another core); "
          "file-inline = records built in the worker")
    return 0


if __name__ == "__main__":
    sys.exit(main())
