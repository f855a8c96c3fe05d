"""What request logging costs in gateway throughput: the same gateway with logging on and off, in one run.

    python bench/logging_cost.py [--duration 5] [--rounds 3] [--json out.json]

Configurations of the same gateway process (uvicorn, uvloop, httptools, one worker, pinned to CPU 0, the same
mock upstream from bench/mock_upstream.py):

* ``off``  — the log pipeline's ``submit`` does nothing: no record is built, written, priced or counted. The
  baseline: the gateway with no request logging at all, otherwise built as ``skyrelay serve`` builds it (its log
  writer process started, and idle), so the worker runs the same code and holds the same modules as in ``file``.
* ``file`` — what ``skyrelay serve`` runs (``SKYRELAY_LOG_WRITER=auto`` = ``process``): the worker hands each
  request log to its log writer process, which builds the full record (bodies, redaction, stream assembly, cost
  from the price table, Prometheus metrics) and writes batches to a ``file://`` sink. The writer runs where the
  load generator runs (CPUs other than the gateway's), as it would on any spare core.
* ``file-samecore`` — the same, with the writer pinned to the gateway's own CPU: the cost when no core is spare.
* ``file-inline`` — ``SKYRELAY_LOG_WRITER=inline`` (what serverless entries run): the worker builds and writes the
  records itself.
* ``file-nobodies`` — ``file`` with ``SKYRELAY_LOG_BODIES=false``.

Each configuration is measured ``--rounds`` times, alternating, with wrk at 16 connections for non-streaming and
for streaming (``"stream": true``, 8 chunks) requests; the report shows the median req/s of each and the cost of
logging as ``1 - on/off``. The target is a cost of at most 5 %. CPU per request is reported for the gateway
process and, separately, for its writer process, so the total work logging takes stays visible. After each
logging run the script checks that the sink holds one record per request the gateway answered.

The gateway is started by this script (``--serve``), not by ``skyrelay serve``, only so that the ``off``
configuration can switch the pipeline off; every configuration runs the same app factory and server settings.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent))

import run as bench  # noqa: E402 - bench/run.py's process, load and readiness helpers (read-only use)

MODES = {
    "off": {},
    "file": {},
    "file-samecore": {},
    "file-inline": {"SKYRELAY_LOG_WRITER": "inline"},
    "file-nobodies": {"SKYRELAY_LOG_BODIES": "false"},
}


# --- the gateway process ----------------------------------------------------------------------------------


def serve(mode: str, port: int) -> None:
    """Run the gateway in this process, as `skyrelay serve` would, with logging switched off for ``off``."""
    import uvicorn

    from core.app import create_app
    from core.gateway import build_gateway
    from core.settings import Settings

    gateway = build_gateway(Settings(port=port), long_lived=True)  # as `skyrelay serve` builds it
    if mode == "off":
        gateway.pipeline.submit = lambda entry: None  # type: ignore[method-assign]
    uvicorn.run(create_app(gateway), host=bench.HOST, port=port, loop="uvloop", http="httptools",
                access_log=False, log_level="warning", timeout_graceful_shutdown=30, server_header=False)


def start_gateway(procs: bench.Processes, plan: bench.Plan, workdir: Path, mock_port: int, mode: str,
                  round_no: int) -> tuple[bench.Target, Path]:
    port = bench.free_port()
    sink = workdir / f"sink-{mode}-{round_no}"
    sink.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYRELAY_")}
    env.update({"SKYRELAY_LOG_SINK": f"file://{sink}", "SKYRELAY_LOG_SPILL_DIR": str(workdir / "spill"),
                "PYTHONPATH": str(BENCH_DIR.parent), **MODES[mode]})
    stderr_path = workdir / f"gateway-{mode}-{round_no}.stderr"
    with stderr_path.open("wb") as stderr:
        proc = procs.start([bench.PYTHON, str(Path(__file__).resolve()), "--serve", mode, "--port", str(port)],
                           cpus=plan.server_cpus, env=env, stderr=stderr)
    target = bench.Target(f"gateway ({mode})", port, bench.gateway_headers(mock_port), proc, stderr_path)
    bench.wait_ready(target, lambda: bench.http_call(port, "GET", "/v1/health", None, {}, 1.0)[0] == 200, 30)
    target.writer_pid = None  # type: ignore[attr-defined]
    if MODES[mode].get("SKYRELAY_LOG_WRITER") != "inline":
        writer = log_writer_pid(proc.pid)
        bench.repin(writer, plan.server_cpus if mode == "file-samecore" else plan.load_cpus)
        target.writer_pid = writer  # type: ignore[attr-defined]
    return target, sink


def log_writer_pid(gateway_pid: int, timeout_s: float = 15.0) -> int:
    """The gateway's log writer process: a child of one of its threads, found in /proc."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for task in Path(f"/proc/{gateway_pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                if b"writer_process" in Path(f"/proc/{child}/cmdline").read_bytes():
                    return int(child)
        time.sleep(0.05)
    raise RuntimeError(f"gateway {gateway_pid} started no log writer process")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_load(load: bench.LoadGen, target: bench.Target, duration: int, body: bytes) -> dict[str, Any]:
    """One wrk phase, plus the gateway's CPU time per request during it: on a machine shared with other work,
    CPU per request is the steadier measure of what the gateway costs (req/s also moves with the neighbours)."""
    assert target.proc is not None
    writer = getattr(target, "writer_pid", None)
    before = cpu_seconds(target.proc.pid)
    writer_before = cpu_seconds(writer) if writer else 0.0
    result = load.run(target, 16, duration, body)
    used = cpu_seconds(target.proc.pid) - before
    writer_used = cpu_seconds(writer) - writer_before if writer else 0.0
    requests = result.get("requests")
    result["cpu_us_per_request"] = used / requests * 1e6 if requests else None
    result["writer_cpu_us_per_request"] = writer_used / requests * 1e6 if requests else None
    return result


def count_records(sink: Path) -> int:
    return sum(len(p.read_bytes().splitlines()) for p in sink.rglob("*.jsonl"))


def gateway_counts(port: int) -> tuple[int, float]:
    """From the gateway's /metrics: requests it answered, and CPU seconds its log writer spent building records."""
    from prometheus_client.parser import text_string_to_metric_families

    status, body = bench.http_call(port, "GET", "/metrics", None, {}, 5.0)
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return int(totals["skyrelay_requests_total"]), totals["skyrelay_log_build_cpu_seconds_total"]


# --- measurement ------------------------------------------------------------------------------------------


def measure(mode: str, round_no: int, procs: bench.Processes, plan: bench.Plan, load: bench.LoadGen,
            workdir: Path, mock_port: int) -> dict[str, Any]:
    target, sink = start_gateway(procs, plan, workdir, mock_port, mode, round_no)
    try:
        bench.check_target(target)
        plain = json.dumps(bench.REQUEST).encode()
        stream = json.dumps(bench.STREAM_REQUEST).encode()
        load.run(target, 16, plan.warmup, plain)
        result = {"rps": timed_load(load, target, plan.duration, plain),
                  "stream_rps": timed_load(load, target, plan.duration, stream)}
        time.sleep(1.5)  # the last batch reaches the writer (batch age 1 s) so metrics count every request
        answered, build_cpu = gateway_counts(target.port) if mode != "off" else (0, 0.0)
    finally:
        assert target.proc is not None
        procs.stop(target.proc)  # SIGTERM: the pipeline flushes before the process exits
    written = count_records(sink)
    problems = bench.stderr_problems(target.stderr_path)
    shutil.rmtree(sink, ignore_errors=True)
    return {"rps": result["rps"]["rps"], "stream_rps": result["stream_rps"]["rps"],
            "cpu_us": result["rps"]["cpu_us_per_request"], "stream_cpu_us": result["stream_rps"]["cpu_us_per_request"],
            "writer_cpu_us": result["rps"]["writer_cpu_us_per_request"],
            "stream_writer_cpu_us": result["stream_rps"]["writer_cpu_us_per_request"],
            "errors": sum(bench._error_count(r) for r in result.values()),
            "answered": answered, "records": written, "stderr": problems,
            "build_us_per_record": build_cpu / answered * 1e6 if answered else None}


def report(results: dict[str, list[dict[str, Any]]], meta: dict[str, Any]) -> str:
    lines = [f"machine: {meta['cpus']} CPUs ({meta['cpu_model']}), Python {meta['python']}; {meta['layout']}",
             f"load: {meta['loadgen']}, 16 connections, {meta['duration']} s per phase, {meta['rounds']} rounds "
             "per configuration (alternating); medians, then the best round", ""]

    def med(runs: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    base = results["off"]
    rows = []
    for mode, runs in results.items():
        row = [mode]
        for rps_key, cpu_key, writer_key in (("rps", "cpu_us", "writer_cpu_us"),
                                             ("stream_rps", "stream_cpu_us", "stream_writer_cpu_us")):
            rps, cpu, writer = med(runs, rps_key), med(runs, cpu_key), med(runs, writer_key)
            spread = f"{min(r[rps_key] for r in runs):,.0f}-{max(r[rps_key] for r in runs):,.0f}"
            if mode == "off":
                row += [f"{rps:,.0f}", spread, "-", f"{cpu:,.0f}", "-", "-", "-"]
            else:
                row += [f"{rps:,.0f}", spread, f"{(1 - rps / med(base, rps_key)) * 100:+.1f}%", f"{cpu:,.0f}",
                        f"{(1 - med(base, cpu_key) / cpu) * 100:+.1f}%", f"{writer:,.0f}" if writer else "-",
                        f"{(1 - med(base, cpu_key) / (cpu + writer)) * 100:+.1f}%"]
        row.append(str(sum(r["errors"] for r in runs)))
        row.append("-" if mode == "off" else ", ".join(f"{r['records']}/{r['answered']}" for r in runs))
        rows.append(row)
    header = ["logging", "req/s", "range", "cost", "gw CPU us/req", "gw CPU cost", "writer us/req", "total CPU cost",
              "stream req/s", "range", "cost", "gw CPU us/req", "gw CPU cost", "writer us/req", "total CPU cost",
              "errors", "records/requests"]
    lines.append(bench._table(header, rows))
    lines += ["", f"best of {meta['rounds']} rounds (the least disturbed: on a shared VM, interference only ever "
              "lowers req/s and raises CPU per request):"]
    best_rows = []
    for mode, runs in results.items():
        row = [mode]
        for rps_key, cpu_key in (("rps", "cpu_us"), ("stream_rps", "stream_cpu_us")):
            rps, cpu = max(r[rps_key] for r in runs), min(r[cpu_key] for r in runs)
            base_rps, base_cpu_best = max(r[rps_key] for r in base), min(r[cpu_key] for r in base)
            row += [f"{rps:,.0f}", "-" if mode == "off" else f"{(1 - rps / base_rps) * 100:+.1f}%", f"{cpu:,.0f}",
                    "-" if mode == "off" else f"{(1 - base_cpu_best / cpu) * 100:+.1f}%"]
        best_rows.append(row)
    lines.append(bench._table(["logging", "req/s", "cost", "gw CPU us/req", "gw CPU cost", "stream req/s", "cost",
                               "gw CPU us/req", "gw CPU cost"], best_rows))
    base_cpu = statistics.median(r["cpu_us"] for r in base)
    for mode, runs in results.items():
        if mode != "off":
            build = statistics.median(r["build_us_per_record"] for r in runs)
            lines.append(f"{mode}: the log writer spent {build:.1f} us of CPU per record building it = "
                         f"{build / base_cpu * 100:.1f}% of the {base_cpu:.0f} us a request costs without logging")
    lines += ["",
              "cost = 1 - req/s with logging / req/s without (target: <= 5%); gw CPU cost = 1 - the gateway process's",
              "CPU per request without / with, i.e. the share of its core's throughput that logging takes; total CPU",
              "cost adds the writer process's CPU (writer us/req): the share of one core's work logging takes in all.",
              "records/requests = records in the sink after SIGTERM / requests the gateway counted.",
              f"foreign CPU during the run: {meta.get('foreign_cpu_s')} s ({meta.get('foreign_share', 0) * 100:.0f}% "
              "of the machine) — other processes competing make req/s noisy; CPU per request much less so"]
    for mode, runs in results.items():
        for r in runs:
            lines += [f"{mode} stderr: {problem}" for problem in r["stderr"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", choices=sorted(MODES), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=int, default=5, help="seconds of load per phase")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured seconds before each configuration")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per configuration")
    parser.add_argument("--modes", default=",".join(MODES), help="configurations to run (off is the baseline)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the gateway and the load to separate CPUs")
    parser.add_argument("--json", metavar="FILE", help="also write every number to this JSON file")
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port)
        return 0
    modes = [m for m in args.modes.split(",") if m]
    if "off" not in modes or set(modes) - set(MODES):
        parser.error(f"--modes must include off and name only {', '.join(MODES)}")
    use_wrk = shutil.which("wrk") is not None
    server_cpus, load_cpus, layout = bench.cpu_layout(not args.no_pin)
    if load_cpus:
        os.sched_setaffinity(0, load_cpus)
    plan = bench.Plan(args.duration, args.duration, args.warmup, 0, [], server_cpus, load_cpus)
    meta = {"cpus": os.cpu_count(), "cpu_model": bench.cpu_model(), "python": sys.version.split()[0],
            "layout": layout, "duration": args.duration, "rounds": args.rounds,
            "loadgen": "wrk" if use_wrk else "bench/loadgen.py (wrk not found)"}
    budget = 60 + len(modes) * args.rounds * (args.warmup + 2 * args.duration + 15)
    print(f"logging_cost: {len(modes)} configurations x {args.rounds} rounds, hard limit {budget:.0f} s",
          file=sys.stderr, flush=True)
    procs = bench.Processes()
    results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    started, cpu_before = time.monotonic(), bench.CpuSnapshot.take()
    with bench.watchdog(budget), tempfile.TemporaryDirectory(prefix="skyrelay-logcost-") as tmp:
        workdir = Path(tmp)
        try:
            mock, mock_port = bench.start_mock(procs, plan, workdir)
            bench.repin(mock.pid, load_cpus)
            load = bench.LoadGen(procs, workdir, load_cpus, use_wrk)
            for round_no in range(args.rounds):
                for mode in modes:
                    print(f"  round {round_no + 1}: {mode} ...", file=sys.stderr, flush=True)
                    results[mode].append(measure(mode, round_no, procs, plan, load, workdir, mock_port))
        finally:
            procs.stop_all()
    meta["elapsed_s"] = round(time.monotonic() - started, 1)
    meta.update(bench.foreign_cpu(cpu_before, bench.CpuSnapshot.take(), meta["elapsed_s"]))
    print(report(results, meta))
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
