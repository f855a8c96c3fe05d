"""The printed report: throughput and latency, streaming, memory, transports, two workers, issue #12's targets
and, last, every error and stderr line the run saw.

Formatting only: every number comes from the phases' results, so the same results can also be written as JSON.
"""

from __future__ import annotations

from typing import Any

from checks import gateway_checks
from load import error_count
from phases import MEMORY_CHECKPOINTS, memory_slope
from servers import CACHE_CAP_BYTES
from targets import DIRECT, FLOOR, PORTKEY


def _ms(us: float | None) -> str:
    return "-" if us is None else f"{us / 1000:.2f}"


def _delta_ms(us: float | None, base: float | None) -> str:
    return "-" if us is None or base is None else f"{(us - base) / 1000:+.2f}"


def _errors_text(entry: dict[str, Any]) -> str:
    parts = []
    for phase in ("at16", "at1"):
        data = entry[phase]
        if data.get("non2xx"):
            parts.append(f"{data['non2xx']} non-2xx@{phase[2:]}")
        socket_errors = {k: data.get(k) for k in ("connect", "read", "write", "timeout") if data.get(k)}
        parts += [f"{n} {k}@{phase[2:]}" for k, n in socket_errors.items()]
    if entry["streaming"].get("failures"):
        parts.append(f"{entry['streaming']['failures']} stream fails")
    if entry.get("memory_errors"):
        parts.append(f"{entry['memory_errors']} in memory runs")
    return ", ".join(parts) or "0"


def text_table(header: list[str], rows: list[list[str]]) -> str:
    """Plain-text columns: the first (names) left-aligned, the rest (numbers) right-aligned."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def fmt(row: list[str]) -> str:
        cells = zip(row, widths, strict=True)
        return "  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(cells))

    return "\n".join([fmt(header), "  ".join("-" * w for w in widths), *(fmt(r) for r in rows)])


def report(results: dict[str, Any], meta: dict[str, Any]) -> str:
    targets: dict[str, Any] = results["targets"]
    out = [f"machine: {meta['cpus']} CPUs ({meta['cpu_model']}), Python {meta['python']}",
           f"load generator: {meta['loadgen']}",
           f"layout: each server is ONE process (uvicorn, 1 worker; Portkey: node); {meta['layout']}",
           f"gateway: python -m core.cli serve from {meta['gateway_dir']}; {meta['gateway_path']}"
           + (f"; extra env {meta['gateway_env']}" if meta["gateway_env"] else ""),
           f"portkey: {meta['portkey']}",
           f"run: warm-up {meta['warmup']:g} s, {meta['duration']:g} s at 16 connections, "
           f"{meta['latency_duration']:g} s at 1 connection, "
           f"{meta['stream_requests']} sequential stream requests; every request body is unique",
           "", *_throughput_table(targets), "", *_streaming_table(targets), "", *_co_lines(targets),
           *_memory_lines(targets, meta), *_transport_lines(targets), *_scaling_lines(results, meta),
           *_targets_lines(results), *_problem_lines(results)]
    return "\n".join(out)


def _throughput_table(targets: dict[str, Any]) -> list[str]:
    direct = targets.get(DIRECT, {})
    floor_rps = targets.get(FLOOR, {}).get("at16", {}).get("rps")
    portkey_rps = targets.get(PORTKEY, {}).get("at16", {}).get("rps")
    base50, base99 = direct.get("at1", {}).get("p50_us"), direct.get("at1", {}).get("p99_us")
    rows = []
    for name, entry in targets.items():
        a16, a1 = entry["at16"], entry["at1"]
        rows.append([name, f"{a16['rps']:,.0f}", _ratio(a16["rps"], floor_rps), _ratio(a16["rps"], portkey_rps),
                     _ms(a1.get("p50_us")), _ms(a1.get("p99_us")),
                     _delta_ms(a1.get("p50_us"), base50), _delta_ms(a1.get("p99_us"), base99),
                     _ms(a16.get("p50_us")), _ms(a16.get("p99_us")), _errors_text(entry)])
    header = ["target", "req/s@16", "x floor", "x portkey", "p50@1 ms", "p99@1 ms", "+p50 ms", "+p99 ms",
              "p50@16 ms", "p99@16 ms", "errors"]
    return [text_table(header, rows),
            "", "(+p50/+p99: latency added vs direct at 1 connection; x floor / x portkey: req/s relative to the "
            "floor's / Portkey's)"]


def _streaming_table(targets: dict[str, Any]) -> list[str]:
    floor = targets.get(FLOOR, {}).get("streaming", {})
    rows = []
    for name, entry in targets.items():
        s = entry["streaming"]
        rows.append([name, _ms(s.get("ttfb_p50_us")), _delta_ms(s.get("ttfb_p50_us"), floor.get("ttfb_p50_us")),
                     _ms(s.get("first_event_p50_us")), _ms(s.get("first_event_p99_us")),
                     _delta_ms(s.get("first_event_p50_us"), floor.get("first_event_p50_us")),
                     str(s.get("requests")), str(s.get("failures"))])
    header = ["target", "TTFB p50 ms", "vs floor ms", "1st event p50 ms", "1st event p99 ms", "vs floor ms", "ok",
              "failed"]
    return ["streaming (stream:true, raw socket, sequential, new connection each):", text_table(header, rows)]


def _ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}" if value is not None and base else "-"


def _co_lines(targets: dict[str, Any]) -> list[str]:
    """wrk's own p99, corrected for coordinated omission: what a caller arriving at random would see.

    The table shows per-request latency. wrk's own figure also counts the requests that would have arrived
    during a stall, so a large gap between the two means a few long pauses, not a slow path overall.
    """
    parts = [f"{name} {_ms(e['at1']['wrk_co_p99_us'])}"
             for name, e in targets.items() if "wrk_co_p99_us" in e["at1"]]
    if not parts:
        return []
    return ["wrk's coordinated-omission-corrected p99@1 (ms): " + ", ".join(parts), ""]


def _memory_lines(targets: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    """Idle and after-load RSS of every server; the request-count checkpoints where they were measured."""
    rows, notes = [], []
    for name, entry in targets.items():
        if entry.get("rss_idle_mb") is None:
            continue
        points = entry.get("memory", [])
        cells = [f"{p['rss_mb']:.1f} [{p['served']:,}]" + ("" if p["reached"] else " short") for p in points]
        slope = memory_slope(points)
        rows.append([name, f"{entry['rss_idle_mb']:.1f}",
                     f"{entry['rss_after_mb']:.1f} [{entry['served_after_phases']:,}]",
                     *(cells or ["-"] * len(MEMORY_CHECKPOINTS)), "-" if slope is None else f"{slope:+.2f}"])
        if entry.get("writer_rss_idle_mb") is not None:
            breakdown = [f"idle {entry['worker_rss_idle_mb']:.1f} + {entry['writer_private_idle_mb']:.1f} "
                         f"({entry['writer_rss_idle_mb']:.1f})",
                         f"after phases {entry['worker_rss_after_mb']:.1f} + {entry['writer_private_after_mb']:.1f} "
                         f"({entry['writer_rss_after_mb']:.1f})"]
            breakdown += [f">={p['checkpoint']:,} {p['worker_rss_mb']:.1f} + {p['writer_private_mb']:.1f} "
                          f"({p['writer_rss_mb']:.1f})" for p in points if p.get("writer_rss_mb") is not None]
            notes.append(f"{name}: worker RSS + the log writer's private memory (its whole RSS), MiB: "
                         f"{'; '.join(breakdown)}")
        if entry.get("cpu_us_per_request") is not None:
            writer = entry.get("writer_cpu_us_per_request")
            notes.append(f"{name}: CPU per request over its phases: worker {entry['cpu_us_per_request']:.0f} us"
                         + ("" if writer is None else f", log writer process {writer:.0f} us (on the load CPUs)"))
        if "log_sink_files" in entry:
            notes.append(f"{name}: request-log sink wrote {entry['log_sink_files']} files, "
                         f"{entry['log_sink_bytes'] / 1e6:.1f} MB")
    if not rows:
        return []
    header = ["target", "idle", "after phases", *(f">={n:,} req" for n in MEMORY_CHECKPOINTS), "MiB per 10k req"]
    return ["memory: RSS in MiB from /proc/<pid>/status [requests served when read]; MiB per 10k req: growth "
            "from the first checkpoint to the last",
            text_table(header, rows),
            "(checkpoints are measured for the first transport only"
            + (f"; its response cache is capped at {CACHE_CAP_BYTES / 2**20:g} MiB for this run, so it is full "
               "before the first checkpoint)" if meta["gateway_path"].startswith("full") else ")"),
            *notes, ""]


def _transport_lines(targets: dict[str, Any]) -> list[str]:
    """With two or more transports (whatever --transports named), the fastest first."""
    gateways = sorted(((name, e) for name, e in targets.items() if name.startswith("gateway (")),
                      key=lambda item: item[1]["at16"]["rps"], reverse=True)
    if len(gateways) < 2:
        return []
    best = gateways[0][1]["at16"]["rps"]
    parts = [f"{name} {e['at16']['rps']:,.0f} req/s ({(e['at16']['rps'] / best - 1) * 100:+.0f}%), "
             f"p50@1 {_ms(e['at1'].get('p50_us'))} ms" for name, e in gateways]
    return ["transports, fastest first: " + "; ".join(parts), ""]


def _scaling_lines(results: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    scaling = results.get("scaling")
    if not scaling:
        return []
    runs = scaling["runs"]
    rows = []
    for workers, run in runs.items():
        per_process = f" ({' + '.join(f'{c:.2f}' for c in run['gateway_cpus'])})" if workers > 1 else ""
        rows.append([str(workers), f"{run['rps']:,.0f}", _ms(run["p99_us"]),
                     f"{sum(run['gateway_cpus']):.2f}{per_process}", f"{run['mock_cpu']:.2f}",
                     f"{run['loadgen_cpu']:.2f}", f"{run['other_cpu']:.2f}", str(run["errors"])])
    ratio = scaling["ratio"]
    load_side = runs[2]["mock_cpu"] + runs[2]["loadgen_cpu"]
    per_cpu = ", ".join(f"{n} worker{'s' if n > 1 else ''} {run['rps'] / sum(run['gateway_cpus']):,.0f}"
                        for n, run in runs.items() if sum(run["gateway_cpus"]))
    return [f"two workers ({scaling['transport']}, {meta['gateway_path'].split(':')[0]}): 1 and 2 workers both "
            f"UNPINNED, gateway, mock and wrk sharing all {meta['cpus']} CPUs, same wrk -t16 -c16 load for "
            f"{meta['duration']:g} s, so the ratio compares like with like (the pinned figure above has a CPU to "
            "itself; a second whole CPU is not free here, the load side needs one)",
            text_table(["workers", "req/s@16", "p99@16 ms", "gateway CPUs", "mock CPUs", "wrk CPUs",
                        "others' CPUs", "errors"], rows),
            f"2 workers / 1 worker: {'-' if ratio is None else f'{ratio:.2f}x'} (target >= 1.7x); with 2 workers "
            f"the load side (wrk + mock) used {load_side:.2f} of the {meta['cpus']} CPUs; gateway req/s per CPU "
            f"second: {per_cpu}", *_busy_warning(runs, meta["cpus"]), ""]


def _busy_warning(runs: dict[int, dict[str, Any]], cpus: int) -> list[str]:
    """Other processes' CPU during a scaling run is CPU the second worker did not get: say so."""
    if max(run["other_cpu"] for run in runs.values()) < 0.1 * cpus:
        return []
    return ["WARNING: other processes used CPU during these runs (others' CPUs); the ratio understates two "
            "workers, rerun on a quiet machine"]


def _targets_lines(results: dict[str, Any]) -> list[str]:
    names = [name for name in results["targets"] if name.startswith("gateway (")]
    if not names:
        return []
    checks = {name: gateway_checks(results, name) for name in names}
    verdict = {True: "PASS", False: "FAIL", None: ""}
    rows = [[check.label, check.goal, *(f"{checks[n][i].value} {verdict[checks[n][i].passed]}".strip()
                                        for n in names)]
            for i, check in enumerate(checks[names[0]])]
    summary = []
    for name in names:
        measured = [c for c in checks[name] if c.passed is not None]
        summary.append(f"{name} {sum(c.passed is True for c in measured)}/{len(measured)}")
    return ["targets (issue #12), computed from this run only; '-' = not measured in this run:",
            text_table(["target", "goal", *names], rows),
            "met: " + ", ".join(summary), ""]


def _problem_lines(results: dict[str, Any]) -> list[str]:
    lines = [f"FAILED {name}: {reason}" for name, reason in results["failures"].items()]
    for name, entry in results["targets"].items():
        for phase in ("at16", "at1"):
            data = entry[phase]
            if not error_count(data):
                continue
            lines.append(f"ERRORS {name} at {phase[2:]} connection(s): statuses {data.get('statuses')}, "
                         f"socket errors connect={data.get('connect')} read={data.get('read')} "
                         f"write={data.get('write')} timeout={data.get('timeout')}")
            samples = list(dict.fromkeys(data.get("samples", [])))[:3]  # wrk keeps one per thread: dedupe
            lines += [f"  sample response: {sample}" for sample in samples]
            if data.get("raw"):
                lines += ["  wrk output:", *("    " + x for x in data["raw"].splitlines())]
        for problem in entry.get("server_stderr_problems", []):
            lines.append(f"{name} stderr: {problem}")
        if "exited" in entry:
            lines.append(f"{name} EXITED during the run with code {entry['exited']}")
        if "killed" in entry:
            lines.append(f"{name} {entry['killed']}")
        if entry.get("memory_errors"):
            lines.append(f"ERRORS {name}: {entry['memory_errors']} during the memory top-up runs")
    for workers, run in (results.get("scaling") or {}).get("runs", {}).items():
        if run["errors"]:
            lines.append(f"ERRORS two-worker scaling, {workers} worker(s): {run['errors']}")
        lines += [f"{workers}-worker gateway stderr: {problem}" for problem in run["stderr"]]
    return lines


