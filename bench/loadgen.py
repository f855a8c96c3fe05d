"""Closed-loop HTTP load generator in Python, for when wrk is not installed.

wrk is preferred (C, far cheaper per request: with this one the direct-to-mock numbers measure the client,
not the mock); this exists so `python bench/run.py` still works without it. Like the wrk hooks it records
status codes and a few error bodies. It runs in its own process, so its CPU use stays off the measured server.

    python bench/loadgen.py --url URL --connections 16 --duration 5 --body-file F --header 'k: v' ...

Prints one JSON object on stdout with the same keys run.py reads from wrk.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
import uvloop


@dataclass
class Tally:
    """Everything the workers record; one instance shared by all of them (single-threaded event loop)."""

    latencies_us: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    bytes: int = 0
    connect_errors: int = 0
    read_errors: int = 0
    timeouts: int = 0


async def _worker(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str],
                  deadline: float, tally: Tally) -> None:
    """One connection's worth of load: send, wait for the full response, repeat until the deadline."""
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        try:
            async with session.post(url, data=body, headers=headers) as response:
                data = await response.read()
        except aiohttp.ClientConnectorError:
            tally.connect_errors += 1
            await asyncio.sleep(0.01)  # a refused connection returns instantly: do not spin
            continue
        except TimeoutError:
            tally.timeouts += 1
            continue
        except aiohttp.ClientError:
            tally.read_errors += 1
            continue
        tally.latencies_us.append((time.perf_counter() - start) * 1e6)
        tally.statuses[response.status] += 1
        tally.bytes += len(data)
        if response.status >= 400 and len(tally.samples) < 5:
            tally.samples.append(f"{response.status}: {data[:400].decode(errors='replace')}")


def _percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


async def run(url: str, connections: int, duration: float, body: bytes, headers: dict[str, str]) -> dict:
    """Drive `connections` concurrent request loops for `duration` seconds; summarise them as wrk does."""
    tally = Tally()
    timeout = aiohttp.ClientTimeout(total=10)
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as session:
        start = time.perf_counter()
        deadline = start + duration
        workers = (_worker(session, url, body, headers, deadline, tally) for _ in range(connections))
        await asyncio.gather(*workers)
        elapsed = time.perf_counter() - start
    values = sorted(tally.latencies_us)
    return {
        "requests": len(values),
        "duration_us": elapsed * 1e6,
        "bytes": tally.bytes,
        "p50_us": _percentile(values, 50),
        "p90_us": _percentile(values, 90),
        "p99_us": _percentile(values, 99),
        "max_us": values[-1] if values else 0.0,
        "mean_us": sum(values) / len(values) if values else 0.0,
        "non2xx": sum(n for status, n in tally.statuses.items() if status >= 400),
        "connect": tally.connect_errors,
        "read": tally.read_errors,
        "write": 0,
        "timeout": tally.timeouts,
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "samples": tally.samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="closed-loop POST load generator (wrk fallback)")
    parser.add_argument("--url", required=True)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--body-file", required=True)
    parser.add_argument("--header", action="append", default=[], help="'name: value', repeatable")
    args = parser.parse_args()
    with open(args.body_file, "rb") as handle:
        body = handle.read()
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    result = uvloop.run(run(args.url, args.connections, args.duration, body, headers))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
