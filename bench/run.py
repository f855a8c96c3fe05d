"""Gateway overhead benchmark: one run, loopback only, every number measured now (nothing hard-coded).

    python bench/run.py [--duration 5] [--transports aiohttp,httpx] [--json out.json]

Four targets answer the same POST /v1/chat/completions, each its own single process:

* direct  — the mock OpenAI upstream itself (bench/mock_upstream.py): the cost of the network path and client;
* floor   — the cheapest Python pass-through proxy (bench/floor_proxy.py): uvicorn + aiohttp, nothing else;
* gateway — `python -m core.cli serve`, once per upstream transport (SKYRELAY_UPSTREAM_TRANSPORT).

"Added latency" is a target's latency minus direct's, so it is what putting that proxy in the path costs.
The ratio to the floor says how much of Python's best case the gateway keeps despite routing, auth, provider
translation and request logging. Load comes from wrk or, without wrk, from bench/loadgen.py in its own
process. wrk's Lua script (bench/wrk_hooks.lua) makes the POST and times every request itself, because wrk's
built-in percentiles add synthetic samples (coordinated-omission correction); those are printed separately.
With two or more CPUs the server being measured gets CPU 0 to itself and
everything else (load generator, mock when it is not the target, this script) shares the rest, so the
numbers are the capacity of one server process on one core rather than a scheduler lottery.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import functools
import http.client
import json
import os
import platform
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
PYTHON = sys.executable
HOST = "127.0.0.1"
PATH = "/v1/chat/completions"
REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello in one sentence."}]}
STREAM_REQUEST = {**REQUEST, "stream": True}


# --- processes ----------------------------------------------------------------------------------------------


def _pin_and_bind_to_parent(cpus: set[int] | None) -> Callable[[], None]:
    """preexec_fn for children: pin before exec (so every thread inherits it) and die with this script.

    PR_SET_PDEATHSIG makes the kernel SIGTERM the child if this script dies without running its cleanup
    (SIGKILL, OOM), so no benchmark server is ever left behind on the machine.
    """

    def setup() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1

    return setup


@dataclass
class Processes:
    """Every child this script starts, so one finally-block can stop all of them."""

    children: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, argv: list[str], *, cpus: set[int] | None, env: dict[str, str] | None = None,
              stdout: Any = subprocess.DEVNULL, stderr: Any = subprocess.DEVNULL,
              cwd: Path = REPO_DIR) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=stdout, stderr=stderr,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=_pin_and_bind_to_parent(cpus))
        self.children.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
        """SIGTERM its process group (it was started in its own session), then SIGKILL if it lingers."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if proc in self.children:
            self.children.remove(proc)

    def stop_all(self) -> None:
        for proc in list(reversed(self.children)):
            self.stop(proc)


def repin(pid: int, cpus: set[int] | None) -> None:
    """Move every thread of a running process (affinity is per thread on Linux)."""
    if not cpus:
        return
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.sched_setaffinity(int(tid), cpus)


def free_port() -> int:
    """A currently unused loopback port (the tiny reuse race is acceptable on a quiet loopback interface)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def read_port_line(proc: subprocess.Popen[bytes], timeout_s: float) -> int:
    """The mock binds port 0 and prints "PORT n": read that line without blocking forever."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    line = proc.stdout.readline().decode() if ready else ""
    if not line.startswith("PORT "):
        raise RuntimeError(f"mock upstream did not report its port (got {line!r}, exit {proc.poll()})")
    return int(line.split()[1])


def rss_mb(pid: int) -> dict[str, float]:
    """Resident memory now and at its peak, from /proc (the gateway is one process: uvicorn with 1 worker)."""
    values: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values


# --- HTTP helpers (stdlib, blocking: only used for readiness and correctness checks) ----------------------


def http_call(port: int, method: str, path: str, body: bytes | None, headers: dict[str, str],
              timeout_s: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout_s)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_ready(target: Target, check: Callable[[], bool], timeout_s: float) -> None:
    """Poll until `check` passes; fail fast, quoting the server's last stderr lines, if it died instead."""
    assert target.proc is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if target.proc.poll() is not None:
            raise RuntimeError(f"{target.name} exited with code {target.proc.returncode} before ready; "
                               f"stderr ends: {stderr_tail(target.stderr_path)}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            if check():
                return
        time.sleep(0.05)
    raise RuntimeError(f"{target.name} not ready after {timeout_s:.0f} s; stderr ends: "
                       f"{stderr_tail(target.stderr_path)}")


def stderr_tail(path: Path | None, lines: int = 3) -> str:
    if path is None or not path.exists():
        return "(no stderr captured)"
    return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:]) or "(empty)"


@dataclass
class Target:
    """One thing to measure: where it listens, what headers it needs, which process to watch."""

    name: str
    port: int
    headers: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    stderr_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{PATH}"


def check_target(target: Target) -> None:
    """Before timing anything, prove the target answers both request kinds correctly."""
    headers = {**target.headers, "content-type": "application/json"}
    status, body = http_call(target.port, "POST", PATH, json.dumps(REQUEST).encode(), headers)
    if status != 200 or b'"chat.completion"' not in body:
        raise RuntimeError(f"{target.name}: non-stream check failed: {status} {body[:300]!r}")
    status, body = http_call(target.port, "POST", PATH, json.dumps(STREAM_REQUEST).encode(), headers)
    if status != 200 or b"data: [DONE]" not in body:
        raise RuntimeError(f"{target.name}: stream check failed: {status} {body[:300]!r}")


# --- load generation ----------------------------------------------------------------------------------------

WRK_HOOKS = BENCH_DIR / "wrk_hooks.lua"  # per-request timing, status tally, JSON summary


def _lua_string(text: str) -> str:
    """A Lua long-bracket literal that cannot be closed early by the text it quotes."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


def write_wrk_script(directory: Path, name: str, body: bytes, headers: dict[str, str]) -> Path:
    """wrk sends GETs by default: the Lua script turns every request into our POST with its headers."""
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(body.decode())}"]
    lines += [f"wrk.headers[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in headers.items()]
    path = directory / f"{name}.lua"
    path.write_text("\n".join(lines) + "\n" + WRK_HOOKS.read_text())
    return path


_UNIT_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6}


def parse_wrk_latency_line(output: str, pct: str) -> float | None:
    """Fallback if the done() hook printed nothing: read e.g. '99%    1.94ms' from --latency output."""
    match = re.search(rf"^\s*{re.escape(pct)}%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE)
    return float(match.group(1)) * _UNIT_US[match.group(2)] if match else None


def parse_wrk(output: str) -> dict[str, Any]:
    """The BENCH_JSON line from done(); the text summary is only a fallback."""
    for line in output.splitlines():
        if line.startswith("BENCH_JSON "):
            return dict(json.loads(line[len("BENCH_JSON "):]))
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if not rps:
        raise RuntimeError(f"could not parse wrk output:\n{output}")
    return {"rps": float(rps.group(1)), "p50_us": parse_wrk_latency_line(output, "50"),
            "p90_us": parse_wrk_latency_line(output, "90"), "p99_us": parse_wrk_latency_line(output, "99"),
            "non2xx": int(non2xx.group(1)) if non2xx else 0}


@dataclass
class LoadGen:
    """Runs one closed-loop load phase against a target with wrk, or the Python fallback."""

    procs: Processes
    workdir: Path
    cpus: set[int] | None
    use_wrk: bool

    def run(self, target: Target, connections: int, duration: int, body: bytes) -> dict[str, Any]:
        headers = {**target.headers, "Content-Type": "application/json"}
        if self.use_wrk:
            script = write_wrk_script(self.workdir, target.name.replace(" ", "_"), body, headers)
            # One connection per thread: the Lua hooks keep one request timer per thread.
            argv = ["wrk", f"-t{connections}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s",
                    "--latency", "-s", str(script), target.url]
        else:
            body_file = self.workdir / "body.json"
            body_file.write_bytes(body)
            argv = [PYTHON, str(BENCH_DIR / "loadgen.py"), "--url", target.url, "--connections",
                    str(connections), "--duration", str(duration), "--body-file", str(body_file)]
            argv += [arg for k, v in headers.items() for arg in ("--header", f"{k}: {v}")]
        return self._execute(argv, duration)

    def _execute(self, argv: list[str], duration: int) -> dict[str, Any]:
        proc = self.procs.start(argv, cpus=self.cpus, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=duration + 20)
        except subprocess.TimeoutExpired:
            self.procs.stop(proc)
            raise RuntimeError(f"load generator did not finish: {' '.join(argv[:3])}") from None
        self.procs.stop(proc)
        text = out.decode(errors="replace")
        if self.use_wrk:
            if proc.returncode != 0 or b".lua" in err:  # a broken script makes wrk send plain GETs instead
                raise RuntimeError(f"wrk failed ({proc.returncode}): {err.decode(errors='replace')[-1000:]}")
            result = parse_wrk(text)
            result["raw"] = text
        else:
            if proc.returncode != 0:
                raise RuntimeError(f"loadgen failed: {err.decode(errors='replace')[-1000:]}")
            result = json.loads(text.strip().splitlines()[-1])
        if "rps" not in result:
            seconds = result["duration_us"] / 1e6
            result["rps"] = result["requests"] / seconds if seconds else 0.0
        return result


# --- streaming time to first byte ---------------------------------------------------------------------------


def stream_request_bytes(port: int, headers: dict[str, str]) -> bytes:
    """A complete HTTP/1.1 request; Connection: close lets the reader take EOF as the end of the stream."""
    body = json.dumps(STREAM_REQUEST).encode()
    lines = [f"POST {PATH} HTTP/1.1", f"Host: {HOST}:{port}", "Content-Type: application/json",
             f"Content-Length: {len(body)}", "Connection: close", "Accept: text/event-stream"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _one_stream(port: int, request: bytes) -> tuple[float, float, bool]:
    """Seconds to the first response byte and to the first SSE event, on a raw socket (no client cost)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        start = time.perf_counter()
        writer.write(request)
        received = b""
        first_byte = first_event = 0.0
        while chunk := await reader.read(65536):
            now = time.perf_counter()
            first_byte = first_byte or now - start
            received += chunk
            if not first_event:
                head_end = received.find(b"\r\n\r\n")
                if head_end >= 0 and b"data:" in received[head_end:]:
                    first_event = now - start
        ok = received.startswith(b"HTTP/1.1 200") and b"data: [DONE]" in received
        return first_byte, first_event, ok
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _measure_streams(port: int, request: bytes, count: int, warmup: int) -> dict[str, Any]:
    ttfb: list[float] = []
    first_event: list[float] = []
    failures = 0
    for index in range(warmup + count):
        try:
            byte_s, event_s, ok = await asyncio.wait_for(_one_stream(port, request), timeout=10)
        except (OSError, TimeoutError):
            failures += 1
            continue
        if not ok:
            failures += 1
        elif index >= warmup:
            ttfb.append(byte_s * 1e6)
            first_event.append(event_s * 1e6)
    return {"requests": len(ttfb), "failures": failures,
            **_pcts("ttfb", ttfb), **_pcts("first_event", first_event)}


def _pcts(prefix: str, values_us: list[float]) -> dict[str, float | None]:
    if not values_us:
        return {f"{prefix}_p50_us": None, f"{prefix}_p99_us": None}
    values = sorted(values_us)
    return {f"{prefix}_p50_us": statistics.median(values),
            f"{prefix}_p99_us": values[min(len(values) - 1, round(0.99 * len(values)) - 1)]}


def measure_streaming(target: Target, count: int) -> dict[str, Any]:
    """N sequential stream requests; sequential so the number is latency, not queueing."""
    request = stream_request_bytes(target.port, target.headers)
    try:
        import uvloop

        return uvloop.run(_measure_streams(target.port, request, count, warmup=10))
    except ImportError:
        return asyncio.run(_measure_streams(target.port, request, count, warmup=10))


# --- the benchmark ------------------------------------------------------------------------------------------


@dataclass
class Plan:
    """Command-line choices plus the CPU layout derived from the machine."""

    duration: int
    latency_duration: int
    warmup: int
    stream_requests: int
    transports: list[str]
    server_cpus: set[int] | None
    load_cpus: set[int] | None
    gateway_dir: Path = REPO_DIR
    gateway_env: dict[str, str] = field(default_factory=dict)


def measure_target(target: Target, plan: Plan, load: LoadGen) -> dict[str, Any]:
    """Warm up, then throughput and tail at 16 connections, latency at 1, and streaming TTFB."""
    body = json.dumps(REQUEST).encode()
    load.run(target, 16, plan.warmup, body)
    at16 = load.run(target, 16, plan.duration, body)
    at1 = load.run(target, 1, plan.latency_duration, body)
    result: dict[str, Any] = {"at16": _strip(at16), "at1": _strip(at1)}
    result["streaming"] = measure_streaming(target, plan.stream_requests)
    return result


def _strip(result: dict[str, Any]) -> dict[str, Any]:
    """Drop wrk's raw text from what gets printed/stored unless something went wrong."""
    cleaned = {k: v for k, v in result.items() if k != "raw"}
    if _error_count(result) and "raw" in result:
        cleaned["raw"] = result["raw"]
    return cleaned


def _error_count(result: dict[str, Any]) -> int:
    return int(sum(result.get(k) or 0 for k in ("non2xx", "connect", "read", "write", "timeout")))


def start_mock(procs: Processes, plan: Plan, logdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    with (logdir / "mock.stderr").open("wb") as stderr:
        argv = [PYTHON, str(BENCH_DIR / "mock_upstream.py"), "--port", "0"]
        proc = procs.start(argv, cpus=plan.server_cpus, stdout=subprocess.PIPE, stderr=stderr)
    return proc, read_port_line(proc, timeout_s=15)


def start_floor(procs: Processes, plan: Plan, logdir: Path, mock_port: int) -> Target:
    port = free_port()
    stderr_path = logdir / "floor.stderr"
    argv = [PYTHON, str(BENCH_DIR / "floor_proxy.py"), "--port", str(port), "--upstream", f"http://{HOST}:{mock_port}"]
    with stderr_path.open("wb") as stderr:
        proc = procs.start(argv, cpus=plan.server_cpus, stderr=stderr)
    target = Target("floor proxy", port, {}, proc, stderr_path)
    body = json.dumps(REQUEST).encode()
    headers = {"content-type": "application/json"}
    wait_ready(target, lambda: http_call(port, "POST", PATH, body, headers, 1.0)[0] == 200, 20)
    return target


def gateway_headers(mock_port: int) -> dict[str, str]:
    return {"x-portkey-provider": "openai", "x-portkey-custom-host": f"http://{HOST}:{mock_port}/v1",
            "Authorization": "Bearer sk-bench"}


def start_gateway(procs: Processes, plan: Plan, logdir: Path, mock_port: int, transport: str) -> Target:
    port = free_port()
    sink = logdir / f"sink-{transport}"
    sink.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYRELAY_")}
    env.update({"SKYRELAY_LOG_SINK": f"file://{sink}", "SKYRELAY_LOG_LEVEL": "warning",
                "SKYRELAY_UPSTREAM_TRANSPORT": transport, "PYTHONPATH": str(plan.gateway_dir)})
    env.update(plan.gateway_env)
    stderr_path = logdir / f"gateway-{transport}.stderr"
    with stderr_path.open("wb") as stderr:
        proc = procs.start([PYTHON, "-m", "core.cli", "serve", "--port", str(port)], cpus=plan.server_cpus,
                           env=env, stderr=stderr, cwd=plan.gateway_dir)
    target = Target(f"gateway ({transport})", port, gateway_headers(mock_port), proc, stderr_path)
    wait_ready(target, lambda: http_call(port, "GET", "/v1/health", None, {}, 1.0)[0] == 200, 30)
    return target


def stderr_problems(path: Path | None, limit: int = 10) -> list[str]:
    """What a server wrote to stderr besides its start-up banner: evidence, reported rather than hidden.

    The gateway runs at log level warning, so anything it says is worth reading. Lines that differ only in
    numbers (retry delays, ports) are counted together.
    """
    if path is None or not path.exists():
        return []
    counts: dict[str, tuple[str, int]] = {}
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip() or line.startswith("skyrelay: "):
            continue
        key = re.sub(r"\d+(\.\d+)?", "N", line)
        first, seen = counts.get(key, (line, 0))
        counts[key] = (first, seen + 1)
    return [f"{line} (x{seen})" if seen > 1 else line for line, seen in list(counts.values())[:limit]]


def sink_size(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def run_benchmark(plan: Plan, use_wrk: bool) -> dict[str, Any]:
    """Start each server in turn, measure it, stop it; the mock runs throughout."""
    procs = Processes()
    results: dict[str, Any] = {"targets": {}, "failures": {}}
    with tempfile.TemporaryDirectory(prefix="skyrelay-bench-") as tmp:
        workdir = Path(tmp)
        load = LoadGen(procs, workdir, plan.load_cpus, use_wrk)
        try:
            mock, mock_port = start_mock(procs, plan, workdir)
            direct = Target("direct (mock)", mock_port, {}, mock)
            check_target(direct)
            _phase(results, direct, plan, load)
            repin(mock.pid, plan.load_cpus)  # from now on the mock is part of the load side, not the target

            def floor() -> None:
                _measure_server(results, start_floor(procs, plan, workdir, mock_port), plan, load, procs)

            def gateway(transport: str) -> None:
                target = start_gateway(procs, plan, workdir, mock_port, transport)
                _measure_server(results, target, plan, load, procs, sink=workdir / f"sink-{transport}")

            _guarded(results, "floor proxy", floor)
            for transport in plan.transports:
                _guarded(results, f"gateway ({transport})", functools.partial(gateway, transport))
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


def _measure_server(results: dict[str, Any], target: Target, plan: Plan, load: LoadGen, procs: Processes,
                    sink: Path | None = None) -> None:
    assert target.proc is not None
    try:
        check_target(target)
        idle = rss_mb(target.proc.pid)
        entry = _phase(results, target, plan, load)
        entry["rss_idle_mb"] = idle.get("VmRSS")
        after = rss_mb(target.proc.pid)
        entry["rss_after_mb"], entry["rss_peak_mb"] = after.get("VmRSS"), after.get("VmHWM")
        if target.proc.poll() is not None:
            entry["exited"] = target.proc.returncode
    finally:
        procs.stop(target.proc)
    if target.proc.returncode == -signal.SIGKILL and "exited" not in entry:
        entry["killed"] = "did not stop within 5 s of SIGTERM and was killed"
    entry["server_stderr_problems"] = stderr_problems(target.stderr_path)  # read after shutdown, too
    if sink is not None:
        entry["log_sink_files"], entry["log_sink_bytes"] = sink_size(sink)


def _phase(results: dict[str, Any], target: Target, plan: Plan, load: LoadGen) -> dict[str, Any]:
    print(f"  measuring {target.name} ...", file=sys.stderr, flush=True)
    entry = measure_target(target, plan, load)
    results["targets"][target.name] = entry
    return entry


# --- report -------------------------------------------------------------------------------------------------


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
    return ", ".join(parts) or "0"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def fmt(row: list[str]) -> str:
        cells = zip(row, widths, strict=True)
        return "  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(cells))

    return "\n".join([fmt(header), "  ".join("-" * w for w in widths), *(fmt(r) for r in rows)])


def report(results: dict[str, Any], meta: dict[str, Any]) -> str:
    targets: dict[str, Any] = results["targets"]
    direct = targets.get("direct (mock)", {})
    floor_rps = targets.get("floor proxy", {}).get("at16", {}).get("rps")
    base50, base99 = direct.get("at1", {}).get("p50_us"), direct.get("at1", {}).get("p99_us")
    out = [f"machine: {meta['cpus']} CPUs ({meta['cpu_model']}), Python {meta['python']}",
           f"load generator: {meta['loadgen']}",
           f"layout: each server is ONE process (uvicorn, 1 worker); {meta['layout']}",
           f"gateway: python -m core.cli serve from {meta['gateway_dir']}, request logs to a file sink"
           + (f", extra env {meta['gateway_env']}" if meta["gateway_env"] else ""),
           f"run: warm-up {meta['warmup']:g} s, {meta['duration']:g} s at 16 connections, "
           f"{meta['latency_duration']:g} s at 1 connection, "
           f"{meta['stream_requests']} sequential stream requests",
           ""]
    rows = []
    for name, entry in targets.items():
        a16, a1 = entry["at16"], entry["at1"]
        ratio = f"{a16['rps'] / floor_rps:.2f}" if floor_rps else "-"
        rows.append([name, f"{a16['rps']:,.0f}", ratio, _ms(a1.get("p50_us")), _ms(a1.get("p99_us")),
                     _delta_ms(a1.get("p50_us"), base50), _delta_ms(a1.get("p99_us"), base99),
                     _ms(a16.get("p50_us")), _ms(a16.get("p99_us")), _errors_text(entry)])
    out.append(_table(["target", "req/s@16", "x floor", "p50@1 ms", "p99@1 ms", "+p50 ms", "+p99 ms",
                       "p50@16 ms", "p99@16 ms", "errors"], rows))
    out += ["", "(+p50/+p99: latency added vs direct at 1 connection; x floor: req/s relative to the floor)",
            "", "streaming (stream:true, raw socket, sequential, new connection each):"]
    floor_event = targets.get("floor proxy", {}).get("streaming", {}).get("first_event_p50_us")
    srows = []
    for name, entry in targets.items():
        s = entry["streaming"]
        srows.append([name, _ms(s.get("ttfb_p50_us")), _ms(s.get("first_event_p50_us")),
                      _ms(s.get("first_event_p99_us")), _delta_ms(s.get("first_event_p50_us"), floor_event),
                      str(s.get("requests")), str(s.get("failures"))])
    out.append(_table(["target", "TTFB p50 ms", "1st event p50 ms", "1st event p99 ms", "vs floor ms",
                       "ok", "failed"], srows))
    out += ["", *_co_lines(targets), *_memory_lines(targets), *_transport_lines(targets),
            *_problem_lines(results)]
    return "\n".join(out)


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


def _memory_lines(targets: dict[str, Any]) -> list[str]:
    lines = []
    for name, entry in targets.items():
        if entry.get("rss_idle_mb") is not None:
            sink = ""
            if "log_sink_files" in entry:
                sink = f"; request-log sink wrote {entry['log_sink_files']} files, " \
                       f"{entry['log_sink_bytes'] / 1e6:.1f} MB"
            lines.append(f"RSS {name}: idle {entry['rss_idle_mb']:.1f} MB, "
                         f"after load {entry['rss_after_mb']:.1f} MB "
                         f"(peak {entry['rss_peak_mb']:.1f} MB){sink}")
    return [*lines, ""] if lines else []


def _transport_lines(targets: dict[str, Any]) -> list[str]:
    a, h = targets.get("gateway (aiohttp)"), targets.get("gateway (httpx)")
    if not a or not h:
        return []
    ra, rh = a["at16"]["rps"], h["at16"]["rps"]
    faster, slower, rf, rs = ("aiohttp", "httpx", ra, rh) if ra >= rh else ("httpx", "aiohttp", rh, ra)
    pa, ph = a["at1"].get("p50_us"), h["at1"].get("p50_us")
    return [f"transports: {faster} is faster: {rf:,.0f} vs {rs:,.0f} req/s at 16 connections "
            f"({(rf / rs - 1) * 100 if rs else 0:+.0f}% over {slower}); "
            f"p50 at 1 connection aiohttp {_ms(pa)} ms vs httpx {_ms(ph)} ms", ""]


def _problem_lines(results: dict[str, Any]) -> list[str]:
    lines = [f"FAILED {name}: {reason}" for name, reason in results["failures"].items()]
    for name, entry in results["targets"].items():
        for phase in ("at16", "at1"):
            data = entry[phase]
            if not _error_count(data):
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
    return lines


# --- entry point --------------------------------------------------------------------------------------------


def cpu_layout(pin: bool) -> tuple[set[int] | None, set[int] | None, str]:
    """With >=2 CPUs the measured server gets one CPU alone; otherwise everything shares (and we say so)."""
    cpus = sorted(os.sched_getaffinity(0))
    if pin and len(cpus) >= 2:
        server, rest = {cpus[0]}, set(cpus[1:])
        return server, rest, (f"measured server pinned to CPU {cpus[0]}; load generator, mock (when not the "
                              f"target) and this script on CPUs {','.join(map(str, sorted(rest)))}")
    return None, None, "no CPU pinning: servers, mock and load generator share all CPUs"


@dataclass(frozen=True)
class CpuSnapshot:
    """Machine-wide and own CPU time, to tell whether something else was competing with the benchmark."""

    machine_busy_s: float
    steal_s: float
    own_s: float

    @classmethod
    def take(cls) -> CpuSnapshot:
        tick = os.sysconf("SC_CLK_TCK")
        fields = [int(x) / tick for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        own = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime  # children count once reaped
        return cls(machine_busy_s=sum(fields[:3]), steal_s=fields[7] if len(fields) > 7 else 0.0, own_s=own)


def foreign_cpu(before: CpuSnapshot, after: CpuSnapshot, wall_s: float) -> dict[str, float]:
    """CPU time (user+system, not interrupts) used by processes not of this benchmark, and VM steal."""
    foreign = max(0.0, (after.machine_busy_s - before.machine_busy_s) - (after.own_s - before.own_s))
    capacity = wall_s * (os.cpu_count() or 1)
    share = round(foreign / capacity, 3) if capacity else 0.0
    return {"foreign_cpu_s": round(foreign, 1), "foreign_share": share,
            "steal_s": round(after.steal_s - before.steal_s, 1)}


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds of load at 16 connections")
    parser.add_argument("--latency-duration", type=int, default=None,
                        help="seconds of load at 1 connection (default: --duration)")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of unmeasured load first")
    parser.add_argument("--stream-requests", type=int, default=200, help="stream requests per target")
    parser.add_argument("--transports", default="aiohttp,httpx", help="gateway upstream transports to run")
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
    args.transports = [t.strip() for t in args.transports.split(",") if t.strip()]
    if unknown := set(args.transports) - {"aiohttp", "httpx"}:
        parser.error(f"unknown transports: {', '.join(sorted(unknown))}")
    if bad := [item for item in args.gateway_env if "=" not in item]:
        parser.error(f"--gateway-env wants NAME=VALUE, got {bad}")
    args.gateway_env = dict(item.split("=", 1) for item in args.gateway_env)
    if args.latency_duration is None:
        args.latency_duration = args.duration
    return args


@contextlib.contextmanager
def watchdog(seconds: float) -> Iterator[None]:
    """Hard bound on the whole run: SIGALRM/SIGTERM become exceptions, so the finally-blocks clean up."""

    def expire(signum: int, _frame: object) -> None:
        reason = f"ran past its {seconds:.0f} s limit" if signum == signal.SIGALRM else "got SIGTERM"
        raise SystemExit(f"bench: stopped, {reason}; all servers it started have been stopped")

    previous = signal.signal(signal.SIGALRM, expire), signal.signal(signal.SIGTERM, expire)
    signal.alarm(int(seconds))
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    use_wrk = not args.python_loadgen and shutil.which("wrk") is not None
    server_cpus, load_cpus, layout = cpu_layout(not args.no_pin)
    if load_cpus:
        os.sched_setaffinity(0, load_cpus)  # this script's own client work (stream TTFB) stays off the server
    plan = Plan(args.duration, args.latency_duration, args.warmup, args.stream_requests, args.transports,
                server_cpus, load_cpus, args.gateway_dir.resolve(), args.gateway_env)
    loadgen = ("wrk -t16 -c16 / -t1 -c1 (thread per connection, each request timed in Lua)" if use_wrk else
               "Python aiohttp loadgen (wrk not found: run `bash scripts/install-services.sh bench`; "
               "direct numbers are client-bound)")
    meta: dict[str, Any] = {
        "cpus": os.cpu_count(), "cpu_model": cpu_model(), "python": platform.python_version(),
        "loadgen": loadgen, "layout": layout, "duration": plan.duration, "warmup": plan.warmup,
        "latency_duration": plan.latency_duration, "stream_requests": plan.stream_requests,
        "gateway_dir": str(plan.gateway_dir), "gateway_env": plan.gateway_env,
    }
    targets = 2 + len(plan.transports)
    budget = 30 + targets * (plan.warmup + plan.duration + plan.latency_duration + 15)
    started, cpu_before = time.monotonic(), CpuSnapshot.take()
    expected = targets * (plan.warmup + plan.duration + plan.latency_duration + 3)
    print(f"bench: {targets} targets, expected ~{expected:.0f} s (hard limit {budget:.0f} s)",
          file=sys.stderr, flush=True)
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
        Path(args.json).write_text(json.dumps({"meta": meta, **results}, indent=2))
    return 1 if results["failures"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
