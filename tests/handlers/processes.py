"""Entry processes started the way each platform starts them, with the environment each platform sets."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.fakes.lambda_runtime_api import RuntimeApiDouble
from tests.support.emulators import ROOT, free_port

#: Variables of the test process that must not leak into an entry (they would point it at real clouds).
_SCRUBBED_PREFIXES = ("SKYRELAY_", "AWS_", "GOOGLE_", "GCE_", "AZURE_", "IDENTITY_", "STORAGE_EMULATOR", "MSI_")

LAMBDA_LOG_STREAM = "2026/11/27/[$LATEST]0123456789abcdef0123456789abcdef"


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
    env.update(HOME=str(home), PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", SKYRELAY_LOG_LEVEL="warning")
    env.update(extra)
    return env


def lambda_env(double: RuntimeApiDouble, home: Path, *, handler: str, **extra: str) -> dict[str, str]:
    """What Lambda sets in a Python execution environment (minus the role's keys, which come with ``extra``)."""
    platform = {
        "AWS_LAMBDA_RUNTIME_API": double.address,
        "AWS_LAMBDA_FUNCTION_NAME": "skyrelay-test",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/skyrelay-test",
        "AWS_LAMBDA_LOG_STREAM_NAME": LAMBDA_LOG_STREAM,
        "AWS_REGION": "us-east-1",
        "LAMBDA_TASK_ROOT": str(ROOT),
        "_HANDLER": handler,
        "TMPDIR": str(home),
    }
    return clean_env(home, **{**platform, **extra})


class EntryProcess:
    """One entry process; its stderr goes to a file so a failing test can show it."""

    def __init__(self, command: list[str], env: dict[str, str], log_path: Path, cwd: Path = ROOT) -> None:
        self.command, self.env, self.log_path, self.cwd = command, env, log_path, cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> EntryProcess:
        with open(self.log_path, "wb") as log:  # the child keeps its own copy of the descriptor
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(self.command, cwd=self.cwd, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout_s: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout_s)

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def awslambdaric_process(double: RuntimeApiDouble, home: Path, handler: str = "handlers/aws/handler.handler",
                         **env: str) -> EntryProcess:
    """The managed Python runtime's own client, ``python -m awslambdaric <handler>``, as Lambda runs it."""
    return EntryProcess([sys.executable, "-m", "awslambdaric", handler],
                        lambda_env(double, home, handler=handler, **env), home / "lambda.log")


def streaming_runtime_process(double: RuntimeApiDouble, home: Path, **env: str) -> EntryProcess:
    """The exec wrapper Lambda would run in place of the managed runtime (``AWS_LAMBDA_EXEC_WRAPPER``)."""
    return EntryProcess([str(ROOT / "handlers" / "aws" / "stream_bootstrap"), "/var/runtime/bootstrap"],
                        lambda_env(double, home, handler="handlers.aws.streaming", SKYRELAY_PYTHON=sys.executable,
                                   **env), home / "lambda-stream.log")


def invoke(double: RuntimeApiDouble, process: EntryProcess, event: Any, timeout_s: float = 30.0) -> Any:
    """Like ``double.invoke``, but fails at once, with the runtime's output, if the runtime process dies."""
    record = double.submit(event)
    deadline = time.monotonic() + timeout_s
    while not record.completed.wait(0.2):
        if not process.alive():
            raise RuntimeError(f"the runtime process exited: {process.output()[-3000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no response within {timeout_s} s: {process.output()[-3000:]}")
    return record


def wait_http(url: str, process: EntryProcess, timeout_s: float = 30.0) -> float:
    """Polls ``url`` until it answers 200; returns seconds since the process started."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"{process.command} exited: {process.output()[-3000:]}")
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return time.monotonic() - process.started_at
        except httpx.HTTPError:
            time.sleep(0.02)
    raise RuntimeError(f"{url} did not answer within {timeout_s} s: {process.output()[-3000:]}")


def port() -> int:
    return free_port()


def records_of(objects: dict[str, bytes]) -> list[dict[str, Any]]:
    """The log records in a set of decompressed JSON Lines objects."""
    return [json.loads(line) for data in objects.values() for line in data.splitlines() if line.strip()]
