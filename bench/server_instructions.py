"""What each HTTP/1.1 server protocol costs the gateway worker, in CPU instructions per request (callgrind).

    python bench/server_instructions.py [--requests 200,800] [--protocols skyrelay,httptools]

``skyrelay serve`` on the full feature path (bench/servers.py's feature store: gateway key, saved config with a
fallback, response cache, request logs to a file sink), once per ``SKYRELAY_HTTP_PROTOCOL`` value, each run twice
under valgrind's callgrind with the two request counts; the difference divided by the difference in requests is
the worker's user-space instructions per request (start-up and shutdown cancel out). Sequential requests on one
keep-alive connection, every body unique so the cache never answers. Kernel work (one write per response instead
of two, for one) is not counted here: bench/run.py's req/s and CPU figures show it.

Slow: about a minute per run. Needs ``valgrind``.
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
from logging_instructions import STRETCHED  # noqa: E402
from processes import PYTHON, free_port  # noqa: E402
from servers import CACHE_CAP_BYTES, feature_headers, write_feature_store  # noqa: E402


def instructions(protocol: str, requests: int, mock_port: int, workdir: Path) -> int:
    """Total instructions of one gateway worker run that answered WARMUP + ``requests`` requests."""
    store = write_feature_store(workdir, mock_port)
    port = free_port()
    tag = f"{protocol}-{requests}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYRELAY_")}
    env.update({"SKYRELAY_LOG_SINK": f"file://{workdir / ('sink-' + tag)}", "SKYRELAY_LOG_LEVEL": "warning",
                "SKYRELAY_LOG_SPILL_DIR": str(workdir / f"spill-{tag}"), "SKYRELAY_CONFIG": str(store),
                "SKYRELAY_CACHE_MEMORY_MAX_BYTES": str(CACHE_CAP_BYTES), "SKYRELAY_HTTP_PROTOCOL": protocol,
                "PYTHONPATH": str(BENCH_DIR.parent), **STRETCHED})
    argv = [PYTHON, "-m", "core.cli", "serve", "--port", str(port)]

    def check(i: int, answer: http.client.HTTPResponse) -> None:
        if answer.status != 200 or answer.getheader("x-portkey-cache-status") != "MISS":
            raise RuntimeError(f"{protocol}: request {i} answered {answer.status}, not a cache MISS")

    return callgrind.instructions(argv, env, workdir / f"callgrind-{tag}.out", workdir / f"{tag}.stderr", port,
                                  feature_headers(), requests, check, cwd=BENCH_DIR.parent)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", default="200,800", help="the two request counts (difference = counted)")
    parser.add_argument("--protocols", default="skyrelay,httptools",
                        help="SKYRELAY_HTTP_PROTOCOL values; the last is the baseline")
    args = parser.parse_args(argv)
    low, high = (int(n) for n in args.requests.split(","))
    protocols = [p for p in args.protocols.split(",") if p]
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not installed (apt-get install valgrind)")
    if high <= low or not protocols:
        parser.error("give at least one protocol, and the second request count must be the larger")
    per_request = callgrind.per_request(protocols, low, high, instructions, "skyrelay-serverinstr-")
    base = per_request[protocols[-1]]
    print(f"gateway worker instructions per request (callgrind, {high - low} requests counted, sequential, one "
          "keep-alive connection, full path)")
    for protocol, count in per_request.items():
        print(f"  {protocol:10} {count:12,.0f}  {(count / base - 1) * 100:+.1f}% vs {protocols[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
