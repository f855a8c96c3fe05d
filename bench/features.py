"""Latency of two features against their baselines, measured side by side in one run on loopback.

* cache: a response-cache HIT against a MISS (the same gateway, the same mock upstream; a MISS sends a new body)
* edge hop: a request through an edge Skyrelay that forwards to a cloud Skyrelay, against the cloud Skyrelay
  called directly — the latency one extra hop adds (issue: multi-gateway regional pattern)

    .venv/bin/python bench/features.py [--requests 400]

Requests are sequential on one keep-alive connection (no queueing), so p50/p99 are per-request latencies.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from processes import free_port, read_port_line  # noqa: E402 - bench/, beside this script, is on sys.path

EDGE_KEY = "sk-sr-bench-edge-to-cloud"


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=open(log, "wb"))


def gateway(port: int, tmp: Path, name: str, extra: dict[str, str]) -> subprocess.Popen[bytes]:
    env = {"SKYRELAY_LOG_SINK": f"file://{tmp}/{name}-logs", "SKYRELAY_LOG_LEVEL": "warning",
           "SKYRELAY_REMOTE_HEALTH_INTERVAL_S": "0", **extra}
    return start([sys.executable, "-m", "core.cli", "serve", "--port", str(port)], env, tmp / f"{name}.stderr")


async def wait_health(session: aiohttp.ClientSession, port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            async with session.get(f"http://127.0.0.1:{port}/v1/health") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError(f"gateway on {port} did not start")


async def timed(session: aiohttp.ClientSession, url: str, headers: dict[str, str], bodies: list[bytes]
                ) -> tuple[list[float], set[str]]:
    latencies, statuses = [], set()
    for body in bodies:
        started = time.perf_counter()
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            statuses.add(f"{response.status} {response.headers.get('x-portkey-cache-status', '')}".strip())
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies, statuses


def summary(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"  {name:<28} p50 {statistics.median(ordered):6.3f} ms   p99 {p99:6.3f} ms"


def body(i: int) -> bytes:
    return json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"question {i}"}]}).encode()


async def main(requests: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="skyrelay-features-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        mock = start([sys.executable, "bench/mock_upstream.py", "--port", "0"], {}, tmp / "mock.stderr")
        procs.append(mock)
        mock_port = read_port_line(mock, 10)
        cloud_port, edge_port = free_port(), free_port()
        store = tmp / "cloud.yaml"
        from core.auth.gateway_keys import hash_key

        store.write_text(f"gateway_keys:\n  - {{id: edge, sha256: {hash_key(EDGE_KEY)}}}\n")
        edge_store = tmp / "edge.yaml"
        edge_store.write_text(f"remote_gateways:\n  cloud: {{url: 'http://127.0.0.1:{cloud_port}', "
                              f"api_key: {{env: CLOUD_KEY}}}}\n")
        procs.append(gateway(cloud_port, tmp, "cloud", {"SKYRELAY_CONFIG": str(store)}))
        procs.append(gateway(edge_port, tmp, "edge", {"SKYRELAY_CONFIG": str(edge_store), "CLOUD_KEY": EDGE_KEY,
                                                      "SKYRELAY_PROVIDER_AFFINITY": "openai=cloud"}))
        upstream = f"http://127.0.0.1:{mock_port}/v1"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
            await wait_health(session, cloud_port)
            await wait_health(session, edge_port)
            cached = {"provider": "openai", "api_key": "sk-bench", "custom_host": upstream,
                      "cache": {"mode": "simple", "max_age": 600}}
            cache_headers = {"content-type": "application/json", "x-portkey-api-key": EDGE_KEY,
                             "x-portkey-config": json.dumps(cached)}
            cloud_url = f"http://127.0.0.1:{cloud_port}/v1/chat/completions"
            await timed(session, cloud_url, cache_headers, [body(i) for i in range(50)])  # warm-up
            miss, miss_status = await timed(session, cloud_url, cache_headers,
                                            [body(10_000 + i) for i in range(requests)])
            await asyncio.sleep(0.3)  # stores are background tasks
            hit, hit_status = await timed(session, cloud_url, cache_headers,
                                          [body(10_000 + i) for i in range(requests)])

            plain = {"content-type": "application/json", "x-portkey-provider": "openai",
                     "x-portkey-custom-host": upstream, "authorization": "Bearer sk-bench"}
            edge_url = f"http://127.0.0.1:{edge_port}/v1/chat/completions"
            await timed(session, edge_url, plain, [body(i) for i in range(50)])
            direct, direct_status = await timed(session, cloud_url, {**plain, "x-portkey-api-key": EDGE_KEY},
                                                [body(i) for i in range(requests)])
            hop, hop_status = await timed(session, edge_url, plain, [body(i) for i in range(requests)])
        print(f"features: {requests} sequential requests each, one connection, mock upstream at 0 ms; "
              f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
        print("response cache (one gateway):")
        print(summary(f"MISS {sorted(miss_status)}", miss))
        print(summary(f"HIT  {sorted(hit_status)}", hit))
        print(f"  HIT saves {statistics.median(miss) - statistics.median(hit):.3f} ms at p50 against a 0 ms upstream "
              "(a real provider's latency comes on top of every MISS)")
        print("edge routing (edge -> cloud gateway -> mock):")
        print(summary(f"cloud gateway direct {sorted(direct_status)}", direct))
        print(summary(f"through the edge {sorted(hop_status)}", hop))
        print(f"  one extra hop adds {statistics.median(hop) - statistics.median(direct):.3f} ms at p50")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    asyncio.run(main(parser.parse_args().requests))
