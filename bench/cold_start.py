"""Cold start of every entry (process start → first response) and the size of every bundle, in one run, next to
the Portkey node gateway's startup measured the same way on the same machine.

    .venv/bin/python bench/cold_start.py [--runs 5] [--no-bundles] [--no-portkey] [--json out.json]

Entries, each a fresh process per run, timed from just before the process is spawned until the first response:

* container     ``python -m handlers.aws.server`` (the EKS / Cloud Run container entry): first ``GET /v1/health``
* lambda        awslambdaric + ``handlers/aws/handler.handler`` under the Runtime API double
                (tests/fakes/lambda_runtime_api.py): the first ``GET /v1/health`` event's result posted back
* lambda-stream ``handlers/aws/stream_bootstrap`` (our Runtime API loop) under the same double: first response
* lambda-chat   as ``lambda``, but the first event is a chat completion relayed to a local fake upstream
                and logged to a file sink: what a user's first request pays
* functions     ``functions-framework --source handlers/gcp/main.py --target gateway``: first ``GET /v1/health``
* azure         a process that imports ``handlers/azure/function_app.py`` and calls the indexed function with
                an ``azure.functions.HttpRequest`` (the Functions host itself cannot run here)
* portkey       ``node .../@portkey-ai/gateway/build/start-server.js --port=N --headless`` (1.15.2, from npm
                into .cache/portkey): first ``GET /``

Python entries run from this checkout's virtualenv with its bytecode caches warm (one unmeasured start first).
A Lambda zip carries no bytecode by default and Lambda cannot write any, so ``lambda (zip, no pyc)`` runs the
handler from an extracted bundle with ``PYTHONDONTWRITEBYTECODE=1``: every module is compiled on the way, as on
Lambda; ``lambda (zip + pyc)`` runs a ``skyrelay bundle --compile`` zip the same way.
Bundles: ``skyrelay bundle`` for aws (x86_64 and arm64, Python 3.12), gcp and azure; pip downloads are cached in
.cache/pip.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.lambda_runtime_api import RuntimeApiDouble  # noqa: E402
from tests.fakes.openai_upstream import FakeOpenAI  # noqa: E402
from tests.handlers.lambda_events import http_event  # noqa: E402

PYTHON = sys.executable
PORTKEY_VERSION = "1.15.2"
# 1.15.2 declares caret ranges. Resolved today, @hono/node-ws 1.3.x lifts @hono/node-server (its peer) to 1.19.x,
# under which every streamed chat completion fails with "TypeError: immutable" (Portkey-AI/gateway#1389). These
# are the newest versions that keep the node server at 1.13.5, the one Portkey's own lockfile resolves (#1604).
PORTKEY_PINS = {"@hono/node-server": "1.13.5", "@hono/node-ws": "1.2.0"}
PORTKEY_DIR = ROOT / ".cache" / "portkey"
PORTKEY_SERVER = PORTKEY_DIR / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
SCRUB = ("SKYRELAY_", "AWS_", "GOOGLE_", "AZURE_", "STORAGE_EMULATOR")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUB)}
    env.update(HOME=str(home), PYTHONPATH=str(ROOT), SKYRELAY_LOG_SINK="stdout://", SKYRELAY_LOG_LEVEL="warning",
               TMPDIR=str(home))
    env.update(extra)
    return env


def spawn(command: list[str], env: dict[str, str], cwd: Path = ROOT) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, 9)
    proc.wait(10)


def until_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.005)
    raise RuntimeError(f"{url} did not answer within {timeout_s} s")


# --- one cold start per entry ---------------------------------------------------------------------------------
def http_entry(command: Callable[[int], list[str]], path: str, **env: str) -> Callable[[Path], float]:
    def once(home: Path) -> float:
        port = free_port()
        started = time.perf_counter()
        proc = spawn(command(port), base_env(home, **env))
        try:
            until_http(f"http://127.0.0.1:{port}{path}", proc)
            return time.perf_counter() - started
        finally:
            stop(proc)

    return once


def lambda_entry(command: list[str], event: Callable[[], dict[str, Any]], cwd: Path = ROOT,
                 **env: str) -> Callable[[Path], float]:
    def once(home: Path) -> float:
        double = RuntimeApiDouble().start()
        record = double.submit(event())
        lambda_env = base_env(home, AWS_LAMBDA_RUNTIME_API=double.address, AWS_LAMBDA_FUNCTION_NAME="bench",
                              AWS_LAMBDA_LOG_STREAM_NAME="2026/11/27/[$LATEST]00112233445566778899aabbccddeeff",
                              AWS_REGION="us-east-1", SKYRELAY_PYTHON=PYTHON, LAMBDA_TASK_ROOT=str(cwd), **env)
        started = time.monotonic()  # the double stamps responses with time.monotonic()
        proc = spawn(command, lambda_env, cwd)
        try:
            while not record.completed.wait(0.005):
                if proc.poll() is not None:
                    raise RuntimeError(f"the runtime exited with {proc.returncode}")
            if record.outcome != "response":
                raise RuntimeError(f"the first invocation failed: {record.result[:300]!r}")
            assert record.completed_at is not None
            return record.completed_at - started
        finally:
            stop(proc)
            double.stop()

    return once


def azure_entry(home_env: dict[str, str]) -> Callable[[Path], float]:
    script = (
        "import asyncio, sys, azure.functions as func\n"
        "sys.path.insert(0, 'handlers/azure')\n"
        "import function_app\n"
        "call = function_app.app.get_functions()[0].get_user_function()\n"
        "class C(func.Context):\n"
        "    invocation_id = 'bench'; function_name = 'skyrelay'; function_directory = '.'\n"
        "    thread_local_storage = trace_context = retry_context = None\n"
        "req = func.HttpRequest(method='GET', url='http://localhost/v1/health', headers={}, body=b'',\n"
        "                       route_params={'route': 'v1/health'})\n"
        "response = asyncio.run(call(req, C()))\n"
        "sys.stdout.write(str(response.status_code)); sys.stdout.flush()\n"
        "import os; os._exit(0)\n"
    )

    def once(home: Path) -> float:
        started = time.perf_counter()
        proc = subprocess.Popen([PYTHON, "-c", script], cwd=ROOT, env=base_env(home, **home_env),
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert proc.stdout is not None
        status = proc.stdout.read(3)
        elapsed = time.perf_counter() - started
        proc.wait(30)
        if status != b"200":
            raise RuntimeError(f"the function answered {status!r}")
        return elapsed

    return once


def measure_all(entries: list[tuple[str, Callable[[Path], float], bool]], runs: int) -> list[dict[str, Any]]:
    """Round robin (run 1 of every entry, then run 2, ...), so a busy moment of the machine hits every entry
    alike instead of one; an entry that fails is reported as such and dropped."""
    samples: dict[str, list[float]] = {name: [] for name, _, _ in entries}
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="cold-") as tmp:
        homes = {name: Path(tmp) / f"home-{i}" for i, (name, _, _) in enumerate(entries)}
        for path in homes.values():
            path.mkdir()
        for round_ in range(runs + 1):
            for name, once, warm_up in entries:
                if name in errors or (round_ == 0 and not warm_up):
                    continue
                print(f"  round {round_}/{runs}: {name}", file=sys.stderr, flush=True)
                try:
                    elapsed = once(homes[name])
                except (RuntimeError, OSError) as exc:
                    errors[name] = str(exc)
                    continue
                if round_ > 0:  # round 0 warms bytecode caches and the page cache, as a deployed image has them
                    samples[name].append(elapsed)
    rows: list[dict[str, Any]] = []
    for name, _, _ in entries:
        if name in errors:
            rows.append({"entry": name, "error": errors[name]})
            continue
        values = samples[name]
        rows.append({"entry": name, "runs": len(values), "median_s": statistics.median(values), "min_s": min(values),
                     "max_s": max(values), "samples_s": values})
    return rows


# --- Portkey -------------------------------------------------------------------------------------------------
def portkey_installed() -> str | None:
    """Installs @portkey-ai/gateway and PORTKEY_PINS from npm into .cache/portkey unless exactly that tree is there;
    returns why it cannot run, if so."""
    wanted = {"@portkey-ai/gateway": PORTKEY_VERSION, **PORTKEY_PINS}
    if portkey_versions() == wanted:
        return None
    if shutil.which("npm") is None or shutil.which("node") is None:
        return "node/npm not installed"
    PORTKEY_DIR.mkdir(parents=True, exist_ok=True)
    manifest = {"private": True, "dependencies": {"@portkey-ai/gateway": PORTKEY_VERSION}, "overrides": PORTKEY_PINS}
    (PORTKEY_DIR / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (PORTKEY_DIR / "package-lock.json").unlink(missing_ok=True)  # a lock from before the pins keeps 1.19.x
    result = subprocess.run(["npm", "install", "--prefix", str(PORTKEY_DIR), "--no-audit", "--no-fund",
                             "--loglevel=error"], capture_output=True, text=True, check=False, timeout=600)
    if result.returncode != 0 or portkey_versions() != wanted:
        return f"npm install failed (got {portkey_versions()}): {result.stderr.strip()[-300:]}"
    return None


def portkey_versions() -> dict[str, str | None]:
    """The versions Node loads for the gateway: a copy nested under the gateway wins over the top-level one."""
    gateway = PORTKEY_DIR / "node_modules" / "@portkey-ai" / "gateway"
    versions = {"@portkey-ai/gateway": _npm_version(gateway)}
    for name in PORTKEY_PINS:
        nested = gateway / "node_modules" / name
        versions[name] = _npm_version(nested if nested.exists() else PORTKEY_DIR / "node_modules" / name)
    return versions


def _npm_version(package: Path) -> str | None:
    try:
        return str(json.loads((package / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


# --- bundles -------------------------------------------------------------------------------------------------
def bundle_sizes(out: Path) -> list[dict[str, Any]]:
    from core.bundle import build

    rows = []
    for cloud, arch in (("aws", "x86_64"), ("aws", "arm64"), ("gcp", "x86_64"), ("azure", "x86_64")):
        started = time.perf_counter()
        artifact = build(cloud, out / f"{cloud}-{arch}", arch=arch, python_version="3.12", progress=lambda _: None)
        rows.append({"artifact": f"{cloud}" + (f" {arch} py3.12 zip" if cloud == "aws" else " source folder"),
                     "bytes": artifact.size, "unpacked_bytes": artifact.unpacked_size,
                     "build_s": time.perf_counter() - started, "path": str(artifact.path)})
    return rows


def extracted_zip(out: Path, compile_bytecode: bool) -> Path:
    """For this machine's Python, so it can run here: the same contents as the deployed zip."""
    from core.bundle import build

    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    label = "pyc" if compile_bytecode else "plain"
    artifact = build("aws", out / f"local-{label}", python_version=version, compile_bytecode=compile_bytecode,
                     progress=lambda _: None)
    task = out / f"task-{label}"
    with zipfile.ZipFile(artifact.path) as archive:
        archive.extractall(task)
    os.chmod(task / "handlers" / "aws" / "stream_bootstrap", 0o755)
    return task


# --- report --------------------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-bundles", action="store_true", help="skip building the bundles")
    parser.add_argument("--no-portkey", action="store_true", help="skip the Portkey node gateway")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args()

    fake = FakeOpenAI().start()
    chat_headers = {"x-portkey-provider": "openai", "x-portkey-custom-host": fake.url,
                    "authorization": "Bearer sk-bench", "content-type": "application/json"}
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    framework = str(Path(PYTHON).parent / "functions-framework")
    entries: list[tuple[str, Callable[[Path], float], bool]] = [
        ("container", http_entry(lambda p: [PYTHON, "-m", "handlers.aws.server", "--host", "127.0.0.1", "--port",
                                            str(p)], "/v1/health"), True),
        ("lambda", lambda_entry([PYTHON, "-m", "awslambdaric", "handlers/aws/handler.handler"],
                                lambda: http_event("function_url", "GET", "/v1/health")), True),
        ("lambda-stream", lambda_entry([str(ROOT / "handlers" / "aws" / "stream_bootstrap")],
                                       lambda: http_event("function_url", "GET", "/v1/health")), True),
        ("lambda-chat", lambda_entry([PYTHON, "-m", "awslambdaric", "handlers/aws/handler.handler"],
                                     lambda: http_event("function_url", "POST", "/v1/chat/completions",
                                                        chat_headers, chat),
                                     SKYRELAY_LOG_SINK="file:///tmp/skyrelay-bench-logs"), True),
        ("functions", http_entry(lambda p: [framework, "--source", "handlers/gcp/main.py", "--target", "gateway",
                                            "--port", str(p)], "/v1/health"), True),
        ("azure", azure_entry({"SKYRELAY_AZURE_AUTH_LEVEL": "anonymous"}), True),
    ]
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                                           "load_1m": os.getloadavg()[0]}, "cold_start": [], "bundles": []}
    with tempfile.TemporaryDirectory(prefix="cold-bundles-") as tmp:
        out = Path(tmp)
        if not args.no_bundles:
            print("building the Lambda zip for this Python, with and without bytecode ...", file=sys.stderr)
            for compiled in (False, True):
                task = extracted_zip(out, compiled)
                entries.append((f"lambda (zip{' + pyc' if compiled else ', no pyc'})", lambda_entry(
                    [PYTHON, "-m", "awslambdaric", "handlers/aws/handler.handler"],
                    lambda: http_event("function_url", "GET", "/v1/health"), cwd=task, PYTHONPATH=str(task),
                    PYTHONDONTWRITEBYTECODE="1"), False))
        if not args.no_portkey:
            reason = portkey_installed()
            if reason is None:
                entries.append(("portkey", http_entry(
                    lambda p: ["node", str(PORTKEY_SERVER), f"--port={p}", "--headless"], "/"), True))
            else:
                results["cold_start"].append({"entry": "portkey", "error": reason})
        print(f"measuring {len(entries)} entries, {args.runs} rounds ...", file=sys.stderr, flush=True)
        results["cold_start"].extend(measure_all(entries, args.runs))
        if not args.no_bundles:
            print("building bundles ...", file=sys.stderr, flush=True)
            results["bundles"] = bundle_sizes(out)
    fake.stop()

    portkey = next((r for r in results["cold_start"] if r["entry"] == "portkey" and "median_s" in r), None)
    print(f"\ncold start, process start -> first response ({args.runs} runs, median [min-max]; "
          f"{results['machine']['cpus']} CPUs, load {results['machine']['load_1m']:.2f})")
    for row in results["cold_start"]:
        if "error" in row:
            print(f"  {row['entry']:<22} not measured: {row['error']}")
            continue
        ratio = f"  {row['median_s'] / portkey['median_s']:.2f}x portkey" if portkey else ""
        print(f"  {row['entry']:<22} {row['median_s'] * 1000:7.0f} ms [{row['min_s'] * 1000:.0f}-"
              f"{row['max_s'] * 1000:.0f}]{ratio}")
    if results["bundles"]:
        print("\nbundles")
        for row in results["bundles"]:
            unpacked = (f", {row['unpacked_bytes'] / 1e6:.2f} MB unpacked"
                        if row["unpacked_bytes"] != row["bytes"] else "")
            print(f"  {row['artifact']:<28} {row['bytes'] / 1e6:6.2f} MB{unpacked}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
