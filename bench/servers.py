"""Starting each target: the mock upstream, the floor proxy, the gateway on its full or minimal path, and
Portkey's node gateway from npm.

Each start returns only once the server answers, so the phases never time a server still warming its imports.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

from plan import Plan
from processes import BENCH_DIR, HOST, PYTHON, Processes, free_port, log_writers, read_port_line, repin
from targets import FLOOR, PATH, PORTKEY, REQUEST, Target, http_call, http_exchange, tagged_body, wait_ready

GATEWAY_KEY = "sk-sr-bench-run"  # the caller's gateway key; the store holds only its digest
CONFIG_ID = "pc-bench"
CACHE_CAP_BYTES = 2 * 1024 * 1024


def start_mock(procs: Processes, plan: Plan, logdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    with (logdir / "mock.stderr").open("wb") as stderr:
        argv = [PYTHON, str(BENCH_DIR / "mock_upstream.py"), "--port", "0"]
        proc = procs.start(argv, cpus=plan.server_cpus, stdout=subprocess.PIPE, stderr=stderr)
    return proc, read_port_line(proc, timeout_s=15)


def start_floor(procs: Processes, plan: Plan, logdir: Path, mock_port: int) -> Target:
    port = free_port()
    stderr_path = logdir / "floor.stderr"
    argv = [PYTHON, str(BENCH_DIR / "floor_proxy.py"), "--port", str(port), "--upstream", f"http://{HOST}:{mock_port}"]
    with stderr_path.open("wb") as stderr:
        proc = procs.start(argv, cpus=plan.server_cpus, stderr=stderr)
    target = Target(FLOOR, port, {}, proc, stderr_path)
    body = json.dumps(REQUEST).encode()
    headers = {"content-type": "application/json"}
    wait_ready(target, lambda: http_call(port, "POST", PATH, body, headers, 1.0)[0] == 200, 20)
    return target


# --- the gateway and its feature path -----------------------------------------------------------------------


def gateway_headers(mock_port: int) -> dict[str, str]:
    """Portkey's provider headers: the minimal path through the gateway, and what Portkey itself needs."""
    return {"x-portkey-provider": "openai", "x-portkey-custom-host": f"http://{HOST}:{mock_port}/v1",
            "Authorization": "Bearer sk-bench"}


def write_feature_store(directory: Path, mock_port: int) -> Path:
    """A config store that puts every feature on the request path: a gateway key allowed one saved config, and
    that config routing (fallback over two targets, both the mock) with the response cache on."""
    upstream = f"http://{HOST}:{mock_port}/v1"
    key = {"id": "bench", "sha256": hashlib.sha256(GATEWAY_KEY.encode()).hexdigest(), "configs": [CONFIG_ID]}
    config = {"strategy": {"mode": "fallback"}, "cache": {"mode": "simple", "max_age": 3600},
              "targets": [{"provider": "openai", "custom_host": upstream} for _ in range(2)]}
    path = directory / f"store-{mock_port}.json"
    path.write_text(json.dumps({"gateway_keys": [key], "configs": {CONFIG_ID: config}}))
    return path


def feature_headers() -> dict[str, str]:
    """What a caller of the full path sends: its gateway key, the saved config's id and its provider key."""
    return {"x-portkey-api-key": GATEWAY_KEY, "x-portkey-config": CONFIG_ID, "Authorization": "Bearer sk-bench"}


def describe_gateway_path(path: str) -> str:
    if path == "minimal":
        return "minimal path: provider headers (x-portkey-provider, -custom-host), request logs to a file sink"
    return (f"full path: gateway key check (x-portkey-api-key), saved config {CONFIG_ID} (fallback over two "
            f"targets), response cache lookup + store (in memory, capped at {CACHE_CAP_BYTES / 2**20:g} MiB), "
            "request logs to a file sink")


def verify_feature_path(target: Target) -> None:
    """Prove the features are on before timing them: no key is refused, a new body is a MISS answered by the
    config's first target, and the same body again is a HIT (from the worker that stored it)."""
    body = tagged_body(REQUEST, f"verify-{secrets.token_hex(4)}")
    headers = {**target.headers, "content-type": "application/json"}
    keyless = {k: v for k, v in headers.items() if k != "x-portkey-api-key"}
    refused = http_exchange(target.port, "POST", PATH, body, keyless)[0]
    status, first, _ = http_exchange(target.port, "POST", PATH, body, headers)
    time.sleep(0.1)  # the cache stores in a background task
    for _ in range(8):  # with several workers each has its own memory cache: ask until the first one answers
        again, second, _ = http_exchange(target.port, "POST", PATH, body, headers)
        if second.get("x-portkey-cache-status") == "HIT":
            break
    seen = (refused, status, first.get("x-portkey-cache-status"), first.get("x-portkey-last-used-option-index"),
            again, second.get("x-portkey-cache-status"))
    if seen != (401, 200, "MISS", "config.targets[0]", 200, "HIT"):
        raise RuntimeError(f"{target.name}: feature path is not on as configured (no key, new body status/cache/"
                           f"target, same body status/cache): {seen}")


def start_gateway(procs: Processes, plan: Plan, logdir: Path, mock_port: int, transport: str, *,
                  workers: int = 1, pinned: bool = True) -> Target:
    """`skyrelay serve` on the configured path; unpinned it may use every CPU (the scaling runs)."""
    name = f"gateway ({transport})" if workers == 1 and pinned else \
        f"gateway ({transport}, {workers} worker{'s' if workers > 1 else ''}, unpinned)"
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    port = free_port()
    sink = logdir / f"sink-{slug}"
    sink.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYRELAY_")}
    env.update({"SKYRELAY_LOG_SINK": f"file://{sink}", "SKYRELAY_LOG_LEVEL": "warning",
                "SKYRELAY_UPSTREAM_TRANSPORT": transport, "PYTHONPATH": str(plan.gateway_dir)})
    headers = gateway_headers(mock_port)
    if plan.gateway_path == "full":
        env.update({"SKYRELAY_CONFIG": str(write_feature_store(logdir, mock_port)),
                    "SKYRELAY_CACHE_MEMORY_MAX_BYTES": str(CACHE_CAP_BYTES)})
        headers = feature_headers()
    env.update(plan.gateway_env)
    stderr_path = logdir / f"{slug}.stderr"
    argv = [PYTHON, "-m", "core.cli", "serve", "--port", str(port), "--workers", str(workers)]
    with stderr_path.open("wb") as stderr:
        proc = procs.start(argv, cpus=plan.server_cpus if pinned else plan.all_cpus, env=env, stderr=stderr,
                           cwd=plan.gateway_dir)
    target = Target(name, port, headers, proc, stderr_path, sink)
    wait_ready(target, lambda: http_call(port, "GET", "/v1/health", None, {}, 1.0)[0] == 200, 30)
    # /v1/ready asks the log writer to check its sink: from here the gateway is whole (idle RSS counts it all).
    wait_ready(target, lambda: http_call(port, "GET", "/v1/ready", None, {}, 10.0)[0] == 200, 30)
    if plan.gateway_env.get("SKYRELAY_LOG_WRITER") != "inline":
        # `skyrelay serve` runs a log writer process per worker. It inherits the worker's CPU pin; like the mock,
        # it moves to the load CPUs, the spare core it would find on any host. Its RSS and CPU are reported.
        target.helpers = log_writers(proc.pid, workers)
        if pinned:
            for writer in target.helpers:
                repin(writer, plan.load_cpus)
    return target


def sink_size(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


# --- Portkey ------------------------------------------------------------------------------------------------

# Portkey 1.15.2 has no host option and listens on every interface: this preload binds it to loopback instead.
LOOPBACK_PRELOAD = """\
const net = require("node:net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (port, host, ...rest) {
  if (typeof port === "number" && (host === undefined || typeof host === "function")) {
    return listen.call(this, port, "127.0.0.1", ...(host === undefined ? rest : [host, ...rest]));
  }
  return listen.call(this, port, host, ...rest);
};
"""


def prepare_portkey(skip: bool) -> tuple[Path | None, str]:
    """Portkey's start script, installed once (pinned) by bench/cold_start.py's helper, so both benchmarks run the
    same tree; or why it is not measured. Runs before the watchdog starts: a first npm install takes a while."""
    if skip:
        return None, "not measured (--no-portkey)"
    if shutil.which("node") is None or shutil.which("npm") is None:
        return None, "not measured: node/npm not installed"
    import cold_start  # bench/, beside this script, is on sys.path

    print(f"bench: Portkey {cold_start.PORTKEY_VERSION}: installing from npm into .cache/portkey unless there ...",
          file=sys.stderr, flush=True)
    reason = cold_start.portkey_installed()
    if reason is not None:
        return None, f"not measured: {reason}"
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    pins = ", ".join(f"{name} {version}" for name, version in cold_start.PORTKEY_PINS.items())
    return cold_start.PORTKEY_SERVER, (
        f"@portkey-ai/gateway {cold_start.PORTKEY_VERSION} from npm (with {pins} pinned: newer ones break its "
        f"streaming, see bench/cold_start.py), node {node}, --headless on loopback; headers x-portkey-provider: "
        "openai, x-portkey-custom-host (loopback is on its default trusted list), Authorization; no cache")


def start_portkey(procs: Processes, plan: Plan, logdir: Path, mock_port: int) -> Target:
    """Portkey's own start script, pinned like the other servers; `GET /` answers once it listens."""
    assert plan.portkey_server is not None
    port = free_port()
    preload = logdir / "loopback.cjs"
    preload.write_text(LOOPBACK_PRELOAD)
    stderr_path = logdir / "portkey.stderr"
    argv = ["node", "--require", str(preload), str(plan.portkey_server), f"--port={port}", "--headless"]
    with stderr_path.open("wb") as stderr:
        proc = procs.start(argv, cpus=plan.server_cpus, stderr=stderr)
    target = Target(PORTKEY, port, gateway_headers(mock_port), proc, stderr_path)
    wait_ready(target, lambda: http_call(port, "GET", "/", None, {}, 1.0)[0] == 200, 30)
    return target
