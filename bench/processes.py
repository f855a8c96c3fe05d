"""The benchmark's children and the machine they share: starting, pinning and stopping processes, free loopback
ports, and what /proc says about memory and CPU time.

Every child is pinned before exec and dies with the script, so a benchmark never leaves a server behind and the
measured server's CPU is not shared by accident.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import resource
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
PYTHON = sys.executable
HOST = "127.0.0.1"


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


def cpu_layout(pin: bool) -> tuple[set[int] | None, set[int] | None, str]:
    """With >=2 CPUs the measured server gets one CPU alone; otherwise everything shares (and we say so)."""
    cpus = sorted(os.sched_getaffinity(0))
    if pin and len(cpus) >= 2:
        server, rest = {cpus[0]}, set(cpus[1:])
        return server, rest, (f"measured server pinned to CPU {cpus[0]}; load generator, mock (when not the "
                              f"target) and this script on CPUs {','.join(map(str, sorted(rest)))}")
    return None, None, "no CPU pinning: servers, mock and load generator share all CPUs"


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


# --- what /proc says ----------------------------------------------------------------------------------------


def rss_mb(pid: int) -> dict[str, float]:
    """Resident memory now and at its peak, from /proc (the gateway is one process: uvicorn with 1 worker)."""
    values: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values


def private_mb(pid: int) -> float | None:
    """Memory only this process holds (private clean + dirty pages, from smaps_rollup): what a helper process adds
    to its parent's RSS. Shared pages — the interpreter, C extensions, both processes map the same files — are in
    the parent's RSS already, and the kernel (and a container's memory limit) charges them once."""
    values: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("Private_Clean", "Private_Dirty"):
                values[key] = int(rest.split()[0])
    return sum(values.values()) / 1024 if len(values) == 2 else None


def log_writers(pid: int, expected: int, timeout_s: float = 15.0) -> tuple[int, ...]:
    """The log writer processes under a gateway (``SKYRELAY_LOG_WRITER=process``), once ``expected`` are up."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = []
        for child in process_tree(pid)[1:]:
            with contextlib.suppress(OSError):
                if b"core.telemetry.writer_process" in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.append(child)
        if len(found) >= expected or time.monotonic() >= deadline:
            return tuple(found)
        time.sleep(0.05)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far, from /proc; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants (uvicorn's supervisor and its workers), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    tree, frontier = [pid], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        tree += children
        frontier = children
    return tree


def children_cpu_s() -> float:
    """CPU time of the children reaped so far (a load generator's, once it has been waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


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
