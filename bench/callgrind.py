"""One gateway worker run under valgrind's callgrind: start it, send N sequential requests, stop it, read the total.

Used by ``logging_instructions.py`` and ``server_instructions.py``, which each run a configuration twice with two
request counts and divide the difference: start-up and shutdown cancel out, what is left is instructions per
request, exact rather than timed.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from processes import HOST, PYTHON, read_port_line
from targets import REQUEST

BENCH_DIR = Path(__file__).resolve().parent

WARMUP = 50  # requests before the counted ones, in every run (caches, price table, first batches)

#: Checks one answer; raises when it is not what the configuration must give.
AnswerCheck = Callable[[int, http.client.HTTPResponse], None]


def instructions(argv: list[str], env: Mapping[str, str], out: Path, stderr_path: Path, port: int,
                 headers: Mapping[str, str], requests: int, check: AnswerCheck, cwd: Path | None = None) -> int:
    """Total instructions of ``argv`` (a server on ``port``) that answered WARMUP + ``requests`` chat requests,
    each with a unique body, on one keep-alive connection."""
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--trace-children=no",
                                 *argv], env=dict(env), stderr=stderr, cwd=cwd)
    try:
        wait_health(port, proc, 600)
        connection = http.client.HTTPConnection(HOST, port, timeout=120)
        for i in range(WARMUP + requests):
            body = json.dumps({**REQUEST, "messages": [{"role": "user", "content": f"{out.stem} request {i}"}]})
            connection.request("POST", "/v1/chat/completions", body, {"content-type": "application/json", **headers})
            answer = connection.getresponse()
            answer.read()
            check(i, answer)
        connection.close()
        time.sleep(1.0)  # the same quiet second before shutdown in every run
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(600)
    match = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no instruction total in {out}")
    return int(match.group(1))


def wait_health(port: int, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway under callgrind exited with {proc.returncode}")
        try:
            connection = http.client.HTTPConnection(HOST, port, timeout=30)
            connection.request("GET", "/v1/health")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(1.0)
    raise RuntimeError("gateway under callgrind did not start")


#: Measures one configuration: (its name, request count, the mock's port, a work folder) -> total instructions.
Measure = Callable[[str, int, int, Path], int]


def per_request(configurations: list[str], low: int, high: int, measure: Measure, prefix: str) -> dict[str, float]:
    """Instructions per request of each configuration: two runs each (``low`` and ``high`` requests) against one
    mock upstream, the difference divided by ``high - low``."""
    result: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        workdir = Path(tmp)
        mock = subprocess.Popen([PYTHON, str(BENCH_DIR / "mock_upstream.py"), "--port", "0"], stdout=subprocess.PIPE)
        try:
            mock_port = read_port_line(mock, timeout_s=15)
            for name in configurations:
                counts = []
                for requests in (low, high):
                    print(f"  {name}: {requests} requests under callgrind ...", file=sys.stderr, flush=True)
                    counts.append(measure(name, requests, mock_port, workdir))
                result[name] = (counts[1] - counts[0]) / (high - low)
        finally:
            mock.terminate()
            mock.wait(10)
    return result
