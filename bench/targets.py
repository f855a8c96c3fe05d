"""A target — one server under measurement — and the blocking stdlib HTTP used to wait for it and check it.

Readiness and correctness checks run before any timing, on fresh connections, so a broken target fails loudly
with its own stderr quoted instead of producing numbers.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from processes import HOST

PATH = "/v1/chat/completions"
REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello in one sentence."}]}
STREAM_REQUEST = {**REQUEST, "stream": True}

DIRECT, FLOOR, PORTKEY = "direct (mock)", "floor proxy", "portkey"


@dataclass
class Target:
    """One thing to measure: where it listens, what headers it needs, which process to watch."""

    name: str
    port: int
    headers: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    stderr_path: Path | None = None
    sink: Path | None = None  # the gateway's request-log folder
    helpers: tuple[int, ...] = ()  # the gateway's log writer processes (counted with it for RSS and CPU)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{PATH}"


def http_call(port: int, method: str, path: str, body: bytes | None, headers: dict[str, str],
              timeout_s: float = 5.0) -> tuple[int, bytes]:
    status, _, data = http_exchange(port, method, path, body, headers, timeout_s)
    return status, data


def http_exchange(port: int, method: str, path: str, body: bytes | None, headers: dict[str, str],
                  timeout_s: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """Status, lower-cased response headers and body of one request on a fresh connection."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout_s)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
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


def check_target(target: Target) -> None:
    """Before timing anything, prove the target answers both request kinds correctly."""
    headers = {**target.headers, "content-type": "application/json"}
    status, body = http_call(target.port, "POST", PATH, json.dumps(REQUEST).encode(), headers)
    if status != 200 or b'"chat.completion"' not in body:
        raise RuntimeError(f"{target.name}: non-stream check failed: {status} {body[:300]!r}")
    status, body = http_call(target.port, "POST", PATH, json.dumps(STREAM_REQUEST).encode(), headers)
    if status != 200 or b"data: [DONE]" not in body:
        raise RuntimeError(f"{target.name}: stream check failed: {status} {body[:300]!r}")


def tagged_body(request: dict[str, Any], tag: str) -> bytes:
    """The request with `tag` appended to its last message: a body no cache has seen."""
    messages = [*request["messages"][:-1], {**request["messages"][-1]}]
    messages[-1]["content"] = f"{messages[-1]['content']} #{tag}"
    return json.dumps({**request, "messages": messages}).encode()


def stderr_tail(path: Path | None, lines: int = 3) -> str:
    if path is None or not path.exists():
        return "(no stderr captured)"
    return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:]) or "(empty)"


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
