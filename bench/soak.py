"""Bounded load and soak: N concurrent streaming clients against one `skyrelay serve` worker for D seconds.

    python bench/soak.py                                  # the full run: 1,000 clients for 60 s
    python bench/soak.py --clients 200 --duration 10      # what the test suite runs (tests/reliability)

Three processes, so the gateway's numbers are its own: a drip upstream (this file, ``upstream`` subcommand: raw
asyncio, every stream sends ``--chunks`` chunks ``--interval`` seconds apart, so streams stay open), one gateway
worker (``skyrelay serve``, file log sink without bodies), and the clients (this process, aiohttp, closed loop:
each client opens its next stream as soon as the last one ends).

Leak checks compare the gateway after a warm-up round at the same concurrency (pools full) with the gateway after
the soak and a short settle: open file descriptors (``/proc/<pid>/fd``) and live asyncio tasks. Tasks are counted
inside the real ``skyrelay serve`` through a ``sitecustomize`` probe put on its PYTHONPATH: SIGUSR1 makes it append
``len(asyncio.all_tasks())`` to a file. Peak RSS is the kernel's high-water mark (``VmHWM``), plus sampled VmRSS.
Finally the gateway is stopped with SIGTERM and its log records are counted: one per request, none lost.

Prints one JSON object (``--json``) or a short table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
CHUNK = (b'data: {"id":"chatcmpl-soak","object":"chat.completion.chunk","created":1764201600,"model":"gpt-4o-mini",'
         b'"choices":[{"index":0,"delta":{"content":"tok "},"finish_reason":null}]}\n\n')
BODY = json.dumps({"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "soak"}]})
PROBE = '''
import asyncio, os, signal

def _count_tasks(signum, frame):
    loop = asyncio._get_running_loop()
    count = len(asyncio.all_tasks(loop)) if loop is not None else -1
    with open(os.environ["SKYRELAY_SOAK_TASKS_FILE"], "a") as out:
        out.write(f"{count}\\n")

signal.signal(signal.SIGUSR1, _count_tasks)
'''


# --- the drip upstream (its own process) ---------------------------------------------------------------------------

def _frame(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def _drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, chunks: int, interval: float) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
            for _ in range(chunks):
                writer.write(_frame(CHUNK))
                await writer.drain()
                await asyncio.sleep(interval)
            writer.write(_frame(b"data: [DONE]\n\n") + b"0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass  # the gateway closed a pooled connection
    writer.close()


async def _serve_upstream(chunks: int, interval: float) -> None:
    server = await asyncio.start_server(lambda r, w: _drip(r, w, chunks, interval), "127.0.0.1", 0, backlog=4096)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


# --- the clients and the measurements (this process) --------------------------------------------------------------

@dataclass
class Tally:
    completed: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    truncated: int = 0
    first_byte_ms: list[float] = field(default_factory=list)


async def _client(session: aiohttp.ClientSession, url: str, headers: dict[str, str], stop_at: float,
                  tally: Tally) -> None:
    while time.monotonic() < stop_at:
        started = time.monotonic()
        try:
            async with session.post(url, data=BODY, headers=headers) as response:
                tally.statuses[response.status] += 1
                first = True
                body = bytearray()
                async for data in response.content.iter_any():
                    if first:
                        tally.first_byte_ms.append((time.monotonic() - started) * 1000)
                        first = False
                    body += data
                if response.status == 200 and not body.rstrip().endswith(b"data: [DONE]"):
                    tally.truncated += 1
                tally.completed += 1
        except (aiohttp.ClientError, TimeoutError) as exc:
            tally.errors[type(exc).__name__] += 1
            await asyncio.sleep(0.1)


async def _load(url: str, headers: dict[str, str], clients: int, duration: float) -> Tally:
    tally = Tally()
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=120, sock_connect=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        stop_at = time.monotonic() + duration
        await asyncio.gather(*(_client(session, url, headers, stop_at, tally) for _ in range(clients)))
    return tally


def _proc_status(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _tasks(pid: int, tasks_file: Path) -> int:
    before = tasks_file.read_text().count("\n") if tasks_file.exists() else 0
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = tasks_file.read_text().splitlines() if tasks_file.exists() else []
        if len(lines) > before:
            return int(lines[-1])
        time.sleep(0.05)
    raise RuntimeError("the gateway did not answer the task-count probe")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/v1/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("gateway did not become healthy")


def _count_records(log_dir: Path) -> int:
    return sum(path.read_bytes().count(b"\n") for path in log_dir.rglob("*.jsonl"))


async def _sample_rss(pid: int, samples: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        samples.append(_proc_status(pid, "VmRSS"))
        await asyncio.sleep(0.5)


async def _measured_load(pid: int, url: str, headers: dict[str, str], clients: int, duration: float
                         ) -> tuple[Tally, list[int], float]:
    samples: list[int] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample_rss(pid, samples, stop))
    started = time.monotonic()
    tally = await _load(url, headers, clients, duration)
    elapsed = time.monotonic() - started
    stop.set()
    await sampler
    return tally, samples, elapsed


def run_soak(clients: int, duration: float, chunks: int, interval: float, warmup: float) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="skyrelay-soak-"))
    (work / "probe").mkdir()
    (work / "probe" / "sitecustomize.py").write_text(PROBE)
    tasks_file = work / "tasks.txt"
    upstream = subprocess.Popen([sys.executable, __file__, "upstream", "--chunks", str(chunks),
                                 "--interval", str(interval)], stdout=subprocess.PIPE, cwd=ROOT)
    gateway: subprocess.Popen[bytes] | None = None
    try:
        assert upstream.stdout is not None
        upstream_port = int(upstream.stdout.readline().split()[1])
        port = _free_port()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(work / "probe"), str(ROOT)]),
               "SKYRELAY_SOAK_TASKS_FILE": str(tasks_file), "SKYRELAY_LOG_SINK": f"file://{work / 'logs'}",
               "SKYRELAY_LOG_BODIES": "false", "SKYRELAY_LOG_LEVEL": "warning",
               "SKYRELAY_CONFIG": "", "SKYRELAY_REDIS_URL": ""}
        env = {k: v for k, v in env.items() if v != ""}
        stderr = open(work / "gateway.stderr", "wb")
        gateway = subprocess.Popen([sys.executable, "-m", "core.cli", "serve", "--port", str(port)], cwd=ROOT,
                                   env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, gateway)
        chat = f"{url}/v1/chat/completions"
        headers = {"content-type": "application/json", "x-portkey-provider": "openai",
                   "x-portkey-custom-host": f"http://127.0.0.1:{upstream_port}/v1", "authorization": "Bearer sk-soak"}
        rss_idle = _proc_status(gateway.pid, "VmRSS")
        warm, _, _ = asyncio.run(_measured_load(gateway.pid, chat, headers, clients, warmup))
        time.sleep(3)
        fds_before, tasks_before = _fds(gateway.pid), _tasks(gateway.pid, tasks_file)
        tally, samples, elapsed = asyncio.run(_measured_load(gateway.pid, chat, headers, clients, duration))
        time.sleep(3)
        fds_after, tasks_after = _fds(gateway.pid), _tasks(gateway.pid, tasks_file)
        peak_rss = _proc_status(gateway.pid, "VmHWM")
        gateway.send_signal(signal.SIGTERM)
        exit_code = gateway.wait(timeout=60)
        sent = sum(warm.statuses.values()) + sum(tally.statuses.values())
        records = _count_records(work / "logs")
        first_byte = sorted(tally.first_byte_ms) or [0.0]
        return {
            "clients": clients, "duration_s": round(elapsed, 1), "stream_chunks": chunks,
            "chunk_interval_s": interval,
            "streams_completed": tally.completed, "streams_per_s": round(tally.completed / elapsed, 1),
            "statuses": dict(tally.statuses), "client_errors": dict(tally.errors), "truncated_streams":
            tally.truncated, "ttfb_ms_p50": round(first_byte[len(first_byte) // 2], 1),
            "ttfb_ms_p99": round(first_byte[int(len(first_byte) * 0.99) - 1 if len(first_byte) > 1 else 0], 1),
            "rss_idle_mib": round(rss_idle / 2**20, 1), "rss_peak_mib": round(peak_rss / 2**20, 1),
            "rss_sampled_max_mib": round(max(samples or [0]) / 2**20, 1),
            "fds_before": fds_before, "fds_after": fds_after, "tasks_before": tasks_before,
            "tasks_after": tasks_after, "requests_sent": sent, "log_records": records,
            "gateway_exit_code": exit_code, "work_dir": str(work),
        }
    finally:
        if gateway is not None and gateway.poll() is None:
            gateway.kill()
            gateway.wait()
        upstream.terminate()
        upstream.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="run", choices=["run", "upstream"])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.25)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.mode == "upstream":
        asyncio.run(_serve_upstream(args.chunks, args.interval))
        return 0
    result = run_soak(args.clients, args.duration, args.chunks, args.interval, args.warmup)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:24} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
