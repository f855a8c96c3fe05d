"""Starts a real ``skyrelay serve`` process on a free loopback port, as a user would run it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class GatewayProcess:
    def __init__(self, log_dir: Path, env: dict[str, str] | None = None, args: list[str] | None = None) -> None:
        self.port = free_port()
        self.log_dir = log_dir
        self.stderr_path = log_dir.parent / f"gateway-{self.port}.stderr"
        self._env = {
            **os.environ,
            "SKYRELAY_LOG_SINK": f"file://{log_dir}",
            "SKYRELAY_LOG_BATCH_MAX_AGE_S": "0.05",
            "SKYRELAY_LOG_LEVEL": "warning",
            **(env or {}),
        }
        self._args = args or []
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 20.0) -> GatewayProcess:
        stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "core.cli", "serve", "--port", str(self.port), *self._args],
            cwd=ROOT, env=self._env, stdout=subprocess.DEVNULL, stderr=stderr,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}: {self.stderr()}")
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"gateway did not start: {self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def records(self) -> list[dict[str, Any]]:
        return read_records(self.log_dir)

    def wait_for_records(self, count: int, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        records = self.records()
        while len(records) < count and time.monotonic() < deadline:
            time.sleep(0.05)
            records = self.records()
        return records


def read_records(log_dir: Path) -> list[dict[str, Any]]:
    records = []
    for path in sorted(log_dir.rglob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                records.append(json.loads(line))
    return records
