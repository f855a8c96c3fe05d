"""Gateway overhead benchmark: one run, loopback only, every number measured now (nothing hard-coded).

    python bench/run.py [--duration 5] [--transports http1,aiohttp] [--gateway-path full|minimal] [--no-portkey]
                        [--no-workers] [--json out.json]

Targets answer the same POST /v1/chat/completions, each its own single process:

* direct  — the mock OpenAI upstream itself (bench/mock_upstream.py): the cost of the network path and client;
* floor   — the cheapest Python pass-through proxy (bench/floor_proxy.py): uvicorn + aiohttp, nothing else;
* gateway — `python -m core.cli serve`, once per upstream transport (SKYRELAY_UPSTREAM_TRANSPORT);
* portkey — Portkey's node gateway, @portkey-ai/gateway 1.15.2 from npm, installed (once, pinned, into
  .cache/portkey) by bench/cold_start.py's helper, driven with Portkey's provider headers. It has no host flag
  and would listen on every interface; a preloaded listen() wrapper keeps it on loopback.

The gateway runs its whole feature path, as issue #12's targets are defined: the gateway key is checked (digest,
config allow-list), a saved config is resolved and routed (fallback over two targets), the response cache is
looked up and the answer stored (in memory), and a request log goes to a file sink. Every request body is unique
(wrk's Lua numbers them, so does the stream client), so the cache never answers: each request goes upstream, as
it does through the floor and Portkey. A check before timing proves it (no key → 401, new body → MISS, again →
HIT). `--gateway-path minimal` measures provider headers and logging only.

"Added latency" is a target's latency minus direct's, so it is what putting that proxy in the path costs.
The ratio to the floor says how much of Python's best case the gateway keeps despite routing, auth, provider
translation and request logging; the ratio to Portkey compares it with the gateway it replaces. Load comes from
wrk or, without wrk, from bench/loadgen.py in its own process. wrk's Lua script (bench/wrk_hooks.lua) makes the
POST and times every request itself, because wrk's built-in percentiles add synthetic samples (coordinated-
omission correction); those are printed separately.
With two or more CPUs the server being measured gets CPU 0 to itself and
everything else (load generator, mock when it is not the target, this script) shares the rest, so the
numbers are the capacity of one server process on one core rather than a scheduler lottery.

Memory: the first transport's gateway RSS is read from /proc idle and after at least 10,000, 20,000 and 40,000
requests (the measurement phases count; 16-connection wrk runs top up the rest). With a log writer process it is
the worker's RSS plus the pages only the writer holds: every page the two use, once. Its response cache is capped
at 2 MiB for the run, so the cache is full before the first checkpoint and any later growth is not the cache
filling up to its (configurable) cap.

Two workers: a second worker needs a second CPU, and on a 2-CPU machine the load generator and mock need CPU
too, so pinning cannot give both sides whole cores. Both the 1-worker and the 2-worker gateway are therefore
measured unpinned (gateway, mock and wrk share every CPU) with the same load, and the ratio compares those two,
like with like. The CPU each side used is printed, and the gateway's req/s per CPU-second, so a ratio held back
by the load side's share of the CPUs can be told from one held back by the workers themselves.

The report ends with issue #12's targets, each computed from this run's numbers, with PASS/FAIL.

This file is the command line; the parts sit beside it (see bench/README.md): processes.py, plan.py, targets.py,
servers.py, load.py, streaming.py, phases.py, checks.py and report.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from checks import gateway_checks
from load import LoadGen, error_count
from phases import MEMORY_BUDGET_S, run_benchmark
from plan import Plan
from processes import (
    HOST,
    PYTHON,
    REPO_DIR,
    CpuSnapshot,
    Processes,
    cpu_layout,
    cpu_model,
    foreign_cpu,
    free_port,
    read_port_line,
    repin,
    watchdog,
)
from report import report, text_table
from servers import describe_gateway_path, gateway_headers, prepare_portkey, start_mock
from targets import REQUEST, STREAM_REQUEST, Target, check_target, http_call, stderr_problems, wait_ready

# The helpers other bench scripts reach through `import run as bench` (bench/logging_cost.py); the two private
# names are the ones it has always used.
_error_count, _table = error_count, text_table
__all__ = [
    "HOST", "PYTHON", "REQUEST", "STREAM_REQUEST", "CpuSnapshot", "LoadGen", "Plan", "Processes", "Target",
    "_error_count", "_table", "check_target", "cpu_layout", "cpu_model", "foreign_cpu", "free_port",
    "gateway_headers", "http_call", "main", "read_port_line", "repin", "start_mock", "stderr_problems",
    "wait_ready", "watchdog",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds of load at 16 connections")
    parser.add_argument("--latency-duration", type=int, default=None,
                        help="seconds of load at 1 connection (default: --duration)")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of unmeasured load first")
    parser.add_argument("--stream-requests", type=int, default=200, help="stream requests per target")
    parser.add_argument("--transports", default="http1,aiohttp",
                        help="gateway upstream transports to run, first = the one memory and scaling use")
    parser.add_argument("--gateway-path", choices=["full", "minimal"], default="full",
                        help="full: key, config, routing, cache and logging (issue #12's targets); "
                             "minimal: provider headers and logging only")
    parser.add_argument("--no-portkey", action="store_true", help="do not install and measure Portkey")
    parser.add_argument("--no-workers", action="store_true", help="do not measure two workers against one")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and load to separate CPUs")
    parser.add_argument("--python-loadgen", action="store_true", help="use bench/loadgen.py, not wrk")
    parser.add_argument("--gateway-dir", type=Path, default=REPO_DIR,
                        help="source tree whose core/ is served (default: this checkout)")
    parser.add_argument("--gateway-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the gateway, e.g. SKYRELAY_LOG_BODIES=false (repeatable)")
    parser.add_argument("--json", metavar="FILE", help="also write every number to this JSON file")
    args = parser.parse_args(argv)
    if min(args.duration, args.warmup, args.latency_duration or 1) < 1:
        parser.error("durations are whole seconds (wrk's unit), at least 1")
    args.transports = [t.strip() for t in args.transports.split(",") if t.strip()]  # the gateway validates names
    if bad := [item for item in args.gateway_env if "=" not in item]:
        parser.error(f"--gateway-env wants NAME=VALUE, got {bad}")
    args.gateway_env = dict(item.split("=", 1) for item in args.gateway_env)
    if args.latency_duration is None:
        args.latency_duration = args.duration
    return args


def time_budget(plan: Plan) -> tuple[float, float]:
    """Expected seconds, and the watchdog's hard limit, for this plan."""
    phases = plan.warmup + plan.duration + plan.latency_duration
    servers = 2 + len(plan.transports) + (plan.portkey_server is not None)
    scaling_runs = 2 if plan.scaling and plan.transports else 0
    expected = servers * (phases + 3) + (20 if plan.transports else 0) + \
        scaling_runs * (max(2, plan.warmup) + plan.duration + 5)
    limit = 30 + servers * (phases + 15) + MEMORY_BUDGET_S + 50 + \
        scaling_runs * (max(2, plan.warmup) + plan.duration + 35)
    return expected, limit


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    use_wrk = not args.python_loadgen and shutil.which("wrk") is not None
    all_cpus = set(os.sched_getaffinity(0))
    server_cpus, load_cpus, layout = cpu_layout(not args.no_pin)
    if load_cpus:
        os.sched_setaffinity(0, load_cpus)  # this script's own client work (stream TTFB) stays off the server
    portkey_server, portkey_text = prepare_portkey(args.no_portkey)
    plan = Plan(args.duration, args.latency_duration, args.warmup, args.stream_requests, args.transports,
                server_cpus, load_cpus, args.gateway_dir.resolve(), args.gateway_env, all_cpus=all_cpus,
                gateway_path=args.gateway_path, portkey_server=portkey_server, scaling=not args.no_workers)
    loadgen = ("wrk -t16 -c16 / -t1 -c1 (thread per connection, each request timed in Lua)" if use_wrk else
               "Python aiohttp loadgen (--python-loadgen, or wrk not found: `bash scripts/install-services.sh bench`; "
               "direct numbers are client-bound; its bodies repeat, so a full-path gateway answers from its cache)")
    meta: dict[str, Any] = {
        "cpus": os.cpu_count(), "cpu_model": cpu_model(), "python": platform.python_version(),
        "loadgen": loadgen, "layout": layout, "duration": plan.duration, "warmup": plan.warmup,
        "latency_duration": plan.latency_duration, "stream_requests": plan.stream_requests,
        "gateway_dir": str(plan.gateway_dir), "gateway_env": plan.gateway_env,
        "gateway_path": describe_gateway_path(plan.gateway_path), "portkey": portkey_text,
    }
    expected, budget = time_budget(plan)
    started, cpu_before = time.monotonic(), CpuSnapshot.take()
    print(f"bench: expected ~{expected:.0f} s (hard limit {budget:.0f} s)", file=sys.stderr, flush=True)
    try:
        with watchdog(budget):
            results = run_benchmark(plan, use_wrk)
    except RuntimeError as exc:  # the mock or a load generator failed: there is nothing to compare against
        print(f"bench: failed: {exc}", file=sys.stderr)
        return 2
    meta["elapsed_s"] = round(time.monotonic() - started, 1)
    meta.update(foreign_cpu(cpu_before, CpuSnapshot.take(), meta["elapsed_s"]))
    print()
    print(report(results, meta))
    print(f"\ntotal wall time {meta['elapsed_s']} s; other processes on this machine used "
          f"{meta['foreign_cpu_s']} CPU-s ({meta['foreign_share']:.0%} of all CPUs), "
          f"VM steal {meta['steal_s']} s")
    if meta["foreign_share"] > 0.05 or meta["steal_s"] > 1:
        print("WARNING: the machine was not quiet during the run; expect noisy numbers, rerun to compare")
    if args.json:
        results["checks"] = {name: [vars(c) for c in gateway_checks(results, name)]
                             for name in results["targets"] if name.startswith("gateway (")}
        Path(args.json).write_text(json.dumps({"meta": meta, **results}, indent=2))
    return 1 if results["failures"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
