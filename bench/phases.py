"""The benchmark's phases: each target started, checked, loaded, measured and stopped in turn; the first
transport's gateway also read for memory at request-count checkpoints; one and two workers compared.

The mock runs throughout. A target that fails is recorded as failed and the others are still measured, so one
broken server does not cost the whole run.
"""

from __future__ import annotations

import functools
import json
import math
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from load import LoadGen, error_count
from plan import Plan
from processes import CpuSnapshot, Processes, cpu_seconds, private_mb, process_tree, repin, rss_mb
from servers import (
    sink_size,
    start_floor,
    start_gateway,
    start_mock,
    start_portkey,
    verify_feature_path,
)
from streaming import STREAM_WARMUP, measure_streaming
from targets import DIRECT, FLOOR, PORTKEY, REQUEST, Target, check_target, stderr_problems

MEMORY_CHECKPOINTS = (10_000, 20_000, 40_000)
MEMORY_BUDGET_S = 60.0


def run_benchmark(plan: Plan, use_wrk: bool) -> dict[str, Any]:
    """Start each server in turn, measure it, stop it; the mock runs throughout."""
    procs = Processes()
    results: dict[str, Any] = {"targets": {}, "failures": {}}
    with tempfile.TemporaryDirectory(prefix="skyrelay-bench-") as tmp:
        workdir = Path(tmp)
        load = LoadGen(procs, workdir, plan.load_cpus, use_wrk, unique_bodies=True)
        try:
            mock, mock_port = start_mock(procs, plan, workdir)
            direct = Target(DIRECT, mock_port, {}, mock)
            check_target(direct)
            _phase(results, direct, plan, load)
            repin(mock.pid, plan.load_cpus)  # from now on the mock is part of the load side, not the target
            verify = verify_feature_path if plan.gateway_path == "full" else None

            def floor() -> None:
                _measure_server(results, start_floor(procs, plan, workdir, mock_port), plan, load, procs)

            def gateway(transport: str) -> None:
                target = start_gateway(procs, plan, workdir, mock_port, transport)
                _measure_server(results, target, plan, load, procs, verify=verify,
                                memory=transport == plan.transports[0])

            def portkey() -> None:
                _measure_server(results, start_portkey(procs, plan, workdir, mock_port), plan, load, procs)

            def scaling() -> None:
                results["scaling"] = measure_scaling(procs, plan, workdir, mock, mock_port, use_wrk)

            _guarded(results, FLOOR, floor)
            for transport in plan.transports:
                _guarded(results, f"gateway ({transport})", functools.partial(gateway, transport))
            if plan.portkey_server is not None:
                _guarded(results, PORTKEY, portkey)
            if plan.scaling and plan.transports:
                _guarded(results, "two workers", scaling)
        finally:
            procs.stop_all()
    return results


def _guarded(results: dict[str, Any], name: str, step: Callable[[], None]) -> None:
    """A target that fails to start or answer is reported as failed; the others are still measured."""
    try:
        step()
    except RuntimeError as exc:
        results["failures"][name] = str(exc)
        print(f"  {name}: FAILED: {exc}", file=sys.stderr, flush=True)


def measure_target(target: Target, plan: Plan, load: LoadGen) -> dict[str, Any]:
    """Warm up, then throughput and tail at 16 connections, latency at 1, and streaming TTFB."""
    body = json.dumps(REQUEST).encode()
    warm = load.run(target, 16, plan.warmup, body)
    at16 = load.run(target, 16, plan.duration, body)
    at1 = load.run(target, 1, plan.latency_duration, body)
    result: dict[str, Any] = {"at16": _strip(at16), "at1": _strip(at1)}
    result["streaming"] = streaming = measure_streaming(target, plan.stream_requests)
    stream_count = STREAM_WARMUP + streaming["requests"] + streaming["failures"]
    result["served"] = sum(int(r.get("requests") or 0) for r in (warm, at16, at1)) + stream_count
    return result


def _strip(result: dict[str, Any]) -> dict[str, Any]:
    """Drop wrk's raw text from what gets printed/stored unless something went wrong."""
    cleaned = {k: v for k, v in result.items() if k != "raw"}
    if error_count(result) and "raw" in result:
        cleaned["raw"] = result["raw"]
    return cleaned


def _measure_server(results: dict[str, Any], target: Target, plan: Plan, load: LoadGen, procs: Processes, *,
                    verify: Callable[[Target], None] | None = None, memory: bool = False) -> None:
    """Check, measure and stop one server; with `memory`, also read its RSS at the request-count checkpoints."""
    assert target.proc is not None
    try:
        check_target(target)
        if verify is not None:
            verify(target)
        if target.helpers:
            time.sleep(1.5)  # the checks' records reach the log writer and are built (its price table loads)
        idle = _rss(target)
        cpu_before = [cpu_seconds(pid) for pid in (target.proc.pid, *target.helpers)]
        entry = _phase(results, target, plan, load)
        cpu = [cpu_seconds(pid) - start for pid, start in zip((target.proc.pid, *target.helpers), cpu_before,
                                                                strict=True)]
        entry["cpu_us_per_request"] = cpu[0] / entry["served"] * 1e6 if entry["served"] else None
        (entry["rss_idle_mb"], entry["worker_rss_idle_mb"], entry["writer_rss_idle_mb"],
         entry["writer_private_idle_mb"]) = idle
        after = _rss(target)
        (entry["rss_after_mb"], entry["worker_rss_after_mb"], entry["writer_rss_after_mb"],
         entry["writer_private_after_mb"]) = after
        entry["rss_peak_mb"] = rss_mb(target.proc.pid).get("VmHWM")
        if target.helpers:
            entry["writer_cpu_us_per_request"] = sum(cpu[1:]) / entry["served"] * 1e6 if entry["served"] else None
        entry["served_after_phases"] = entry["served"]
        if memory:
            print(f"  memory of {target.name}: RSS at {', '.join(f'{n:,}' for n in MEMORY_CHECKPOINTS)} "
                  "requests ...", file=sys.stderr, flush=True)
            entry["memory"] = memory_timeline(target, load, entry)
        if target.proc.poll() is not None:
            entry["exited"] = target.proc.returncode
    finally:
        procs.stop(target.proc)
    if target.proc.returncode == -signal.SIGKILL and "exited" not in entry:
        entry["killed"] = "did not stop within 5 s of SIGTERM and was killed"
    entry["server_stderr_problems"] = stderr_problems(target.stderr_path)  # read after shutdown, too
    if target.sink is not None:
        entry["log_sink_files"], entry["log_sink_bytes"] = sink_size(target.sink)


def _phase(results: dict[str, Any], target: Target, plan: Plan, load: LoadGen) -> dict[str, Any]:
    print(f"  measuring {target.name} ...", file=sys.stderr, flush=True)
    entry = measure_target(target, plan, load)
    results["targets"][target.name] = entry
    return entry


# --- memory -------------------------------------------------------------------------------------------------


def memory_timeline(target: Target, load: LoadGen, entry: dict[str, Any]) -> list[dict[str, Any]]:
    """RSS once at least each checkpoint's number of requests has been served.

    wrk has no request-count limit, so 16-connection runs sized from the last measured rate top up the count
    the measurement phases left, and the count each RSS was read at is recorded (a checkpoint the phases had
    already passed is read at their count). MEMORY_BUDGET_S bounds the whole top-up.
    """
    assert target.proc is not None
    body = json.dumps(REQUEST).encode()
    served, rps = int(entry["served"]), max(float(entry["at16"]["rps"]), 100.0)
    deadline = time.monotonic() + MEMORY_BUDGET_S
    points: list[dict[str, Any]] = []
    for checkpoint in MEMORY_CHECKPOINTS:
        while served < checkpoint and time.monotonic() < deadline:
            seconds = min(30, max(1, math.ceil((checkpoint - served) * 1.05 / rps)))
            result = load.run(target, 16, seconds, body)
            served += int(result.get("requests") or 0)
            rps = max(float(result["rps"]), 100.0)
            entry["memory_errors"] = entry.get("memory_errors", 0) + error_count(result)
        total, worker, writer, writer_private = _rss(target)
        points.append({"checkpoint": checkpoint, "served": served, "reached": served >= checkpoint,
                       "rss_mb": total, "worker_rss_mb": worker, "writer_rss_mb": writer,
                       "writer_private_mb": writer_private})
    entry["served"] = served
    return points


def _rss(target: Target) -> tuple[float | None, float | None, float | None, float | None]:
    """The gateway's resident memory in MiB: (what the targets count, the worker's RSS, the log writer's RSS, the
    log writer's private memory).

    What counts is the worker's RSS plus the pages only its log writer holds: every page the two use, once. The
    writer's own RSS repeats the interpreter and libraries both map (about 16 MiB), which a plain sum of the two RSS
    would count twice; it is reported beside.
    """
    assert target.proc is not None
    worker = rss_mb(target.proc.pid).get("VmRSS")
    if not target.helpers:
        return worker, worker, None, None
    writer = sum(rss_mb(pid).get("VmRSS") or 0.0 for pid in target.helpers)
    private = sum(private_mb(pid) or 0.0 for pid in target.helpers)
    return (worker + private if worker is not None else None), worker, writer, private


def memory_slope(points: list[dict[str, Any]]) -> float | None:
    """RSS growth per 10,000 requests between the first and the last checkpoint reached: ~0 is flat."""
    reached = [p for p in points if p["reached"] and p["rss_mb"] is not None]
    if len(reached) < 2 or reached[-1]["served"] == reached[0]["served"]:
        return None
    first, last = reached[0], reached[-1]
    return float((last["rss_mb"] - first["rss_mb"]) / (last["served"] - first["served"]) * 10_000)


# --- two workers --------------------------------------------------------------------------------------------


def measure_scaling(procs: Processes, plan: Plan, workdir: Path, mock: subprocess.Popen[bytes], mock_port: int,
                    use_wrk: bool) -> dict[str, Any]:
    """One and two workers of the first transport, both unpinned with the same load (see bench/run.py's docstring).

    The mock joins them on every CPU for these runs and goes back to the load CPUs afterwards.
    """
    transport = plan.transports[0]
    load = LoadGen(procs, workdir, plan.all_cpus, use_wrk, unique_bodies=True)
    repin(mock.pid, plan.all_cpus)
    try:
        runs = {workers: _scaling_run(procs, plan, workdir, mock, mock_port, transport, workers, load)
                for workers in (1, 2)}
    finally:
        repin(mock.pid, plan.load_cpus)
    one, two = runs[1]["rps"], runs[2]["rps"]
    return {"transport": transport, "runs": runs, "ratio": two / one if one else None}


def _scaling_run(procs: Processes, plan: Plan, workdir: Path, mock: subprocess.Popen[bytes], mock_port: int,
                 transport: str, workers: int, load: LoadGen) -> dict[str, Any]:
    """One gateway at 16 connections; the CPU its processes, the mock and wrk used, in CPUs (seconds per second)."""
    target = start_gateway(procs, plan, workdir, mock_port, transport, workers=workers, pinned=False)
    assert target.proc is not None
    print(f"  measuring {target.name} ...", file=sys.stderr, flush=True)
    body = json.dumps(REQUEST).encode()
    try:
        check_target(target)
        if plan.gateway_path == "full":
            verify_feature_path(target)
        load.run(target, 16, max(2, plan.warmup), body)  # long enough for every worker to be serving
        pids = process_tree(target.proc.pid)
        before, machine_before = [cpu_seconds(pid) for pid in [*pids, mock.pid]], CpuSnapshot.take()
        result = load.run(target, 16, plan.duration, body)
        used = [cpu_seconds(pid) - start for pid, start in zip([*pids, mock.pid], before, strict=True)]
        machine_s = CpuSnapshot.take().machine_busy_s - machine_before.machine_busy_s
    finally:
        procs.stop(target.proc)
    seconds = (result.get("duration_us") or plan.duration * 1e6) / 1e6
    busy = [cpu / seconds for cpu in used[:-1] if cpu / seconds >= 0.02]  # uvicorn's supervisor idles
    others = max(0.0, machine_s - sum(used) - result["loadgen_cpu_s"]) / seconds
    return {"rps": result["rps"], "p99_us": result.get("p99_us"), "errors": error_count(result),
            "gateway_cpus": busy, "mock_cpu": used[-1] / seconds, "loadgen_cpu": result["loadgen_cpu_s"] / seconds,
            "other_cpu": others, "stderr": stderr_problems(target.stderr_path)}
