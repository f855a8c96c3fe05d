"""Real redis-server processes on random loopback ports: one server, or a small cluster."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.support.gateway_process import free_port


def _wait_ping(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True)
        if result.stdout.strip() == "PONG":
            return
        time.sleep(0.05)
    raise RuntimeError(f"redis on port {port} did not answer")


class RedisServer:
    def __init__(self, workdir: Path, port: int | None = None, extra_args: list[str] | None = None) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed; `make test` installs it (scripts/install-services.sh)")
        self.port = port or free_port()
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._extra = extra_args or []
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), *self._extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        _wait_ping(self.port)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def flush(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "flushall"], capture_output=True, check=True)


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is a valid, free port too."""
    for _ in range(200):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a redis cluster node")


class RedisCluster:
    """Three masters, no replicas: enough to exercise the cluster client and hash-tagged scripts."""

    def __init__(self, workdir: Path) -> None:
        self.nodes = [RedisServer(workdir / f"node{i}", port=free_cluster_port(), extra_args=[
            "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{i}.conf", "--cluster-node-timeout", "2000",
        ]) for i in range(3)]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}"

    def start(self) -> RedisCluster:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        subprocess.run(["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
                       capture_output=True, check=True, timeout=60)
        # Every node must see the whole cluster: the first one reports ok before gossip has reached the others,
        # which then answer CLUSTERDOWN for a moment (a flaky first write in the tests).
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            if all(self._node_ready(node.port) for node in self.nodes):
                return self
            time.sleep(0.1)
        raise RuntimeError("redis cluster did not become ready")

    def _node_ready(self, port: int) -> bool:
        info = subprocess.run(["redis-cli", "-p", str(port), "cluster", "info"], capture_output=True,
                              text=True).stdout
        return "cluster_state:ok" in info and "cluster_known_nodes:3" in info and "cluster_slots_ok:16384" in info

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()
