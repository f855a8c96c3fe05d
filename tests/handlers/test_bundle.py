"""``skyrelay bundle``: the Lambda zip is self-sufficient and small, the GCP and Azure folders are deployable as
they are. The zip is built for this machine's Python so that it can be run here, from its own files, by the Lambda
runtime client — with nothing else on the path but what Lambda's Python runtime provides."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from core.bundle.build import build, write_zip
from tests.fakes.lambda_runtime_api import RuntimeApiDouble
from tests.fakes.openai_upstream import FakeOpenAI
from tests.handlers.conftest import chat_body, chat_headers
from tests.handlers.lambda_events import http_event
from tests.handlers.processes import EntryProcess, clean_env, invoke, lambda_env, port, records_of, wait_http
from tests.support.emulators import MotoS3

LOCAL_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
LAMBDA_ZIP_LIMIT = 10_000_000
#: What the managed Python runtime has besides the standard library: its runtime client and the AWS SDK.
LAMBDA_RUNTIME_PACKAGES = ["awslambdaric", "runtime_client.*.so", "simplejson", "snapshot_restore_py", "boto3",
                           "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "core.cli", "bundle", *args], capture_output=True, text=True,
                          check=False, timeout=600)


@pytest.mark.slow
def test_the_lambda_zip_runs_on_its_own(tmp_path: Path, s3: MotoS3, fake_openai: FakeOpenAI) -> None:
    built = run_cli("--cloud", "aws", "--out", str(tmp_path / "out"), "--python-version", LOCAL_PYTHON, "--no-compile")
    assert built.returncode == 0, built.stderr
    assert "[aws 4/4] zipping" in built.stderr  # progress as it goes
    artifact = Path(built.stdout.split("\t")[0])

    assert artifact.stat().st_size <= LAMBDA_ZIP_LIMIT
    with zipfile.ZipFile(artifact) as archive:
        names = archive.namelist()
        bootstrap_mode = archive.getinfo("handlers/aws/stream_bootstrap").external_attr >> 16
        archive.extractall(tmp_path / "task")
    tops = {name.split("/", 1)[0] for name in names}
    assert {"core", "handlers", "mangum", "pydantic_core", "aiohttp", "fastapi"} <= tops
    assert not tops & {"boto3", "botocore", "s3transfer", "uvicorn", "uvloop", "tests", "bin"}
    assert "httptools" in tops  # the upstream client's HTTP parser
    assert sorted(n.split("/")[1] for n in names if n.startswith("handlers/") and n.count("/") >= 2) and \
        {n.split("/")[1] for n in names if n.startswith("handlers/") and n.count("/") >= 2} == {"aws", "common"}
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert any(n.startswith("pydantic_core/") and f"cpython-{LOCAL_PYTHON.replace('.', '')}-x86_64-linux-gnu.so" in n
               for n in names)
    assert bootstrap_mode & stat.S_IXUSR

    task = tmp_path / "task"
    os.chmod(task / "handlers" / "aws" / "stream_bootstrap", 0o755)
    runtime = tmp_path / "var-runtime"
    runtime.mkdir()
    site = Path(httpx.__file__).resolve().parents[1]
    for pattern in LAMBDA_RUNTIME_PACKAGES:
        for installed in site.glob(pattern):
            (runtime / installed.name).symlink_to(installed)
    double = RuntimeApiDouble().start()
    env = lambda_env(double, tmp_path, handler="handlers/aws/handler.handler", SKYRELAY_LOG_BUCKET=s3.bucket,
                     SKYRELAY_LOG_PREFIX="from-zip", PYTHONPATH=f"{task}:{runtime}", LAMBDA_TASK_ROOT=str(task),
                     XDG_CACHE_HOME=str(tmp_path / "cache"), **s3.env())
    process = EntryProcess([sys.executable, "-S", "-m", "awslambdaric", "handlers/aws/handler.handler"], env,
                           tmp_path / "zip.log", cwd=task).start()
    try:
        health = invoke(double, process, http_event("function_url", "GET", "/v1/health"), timeout_s=90)
        chat = invoke(double, process, http_event("apigw_rest_proxy", "POST", "/v1/chat/completions",
                                                  chat_headers(fake_openai), chat_body()))
    finally:
        process.stop()
        double.stop()

    assert health.json()["statusCode"] == 200, process.output()[-3000:]
    assert chat.json()["statusCode"] == 200, process.output()[-3000:]
    assert json.loads(chat.json()["body"])["choices"][0]["message"]["content"] == "Hello from the fake upstream."
    [record] = records_of(s3.objects("from-zip"))
    # priced from the export the bundle ships (core/telemetry/price_exports), not from a library import at cold start
    exports = [n for n in names if n.startswith("core/telemetry/price_exports/")]
    assert len(exports) == 1 and exports[0].endswith(".json")
    assert record["cost_status"] == "ok" and record["cost_source"].startswith("genai-prices ")
    made = [p for p in tmp_path.rglob("genai-prices-*.json") if not {task, tmp_path / "out"} & set(p.parents)]
    assert not made  # none made at run time


def test_zips_are_reproducible(tmp_path: Path) -> None:
    package = tmp_path / "package"
    (package / "handlers" / "aws").mkdir(parents=True)
    (package / "handlers" / "aws" / "stream_bootstrap").write_text("#!/bin/sh\n")
    (package / "handlers" / "aws" / "stream_bootstrap").chmod(0o755)
    (package / "core.py").write_text("x = 1\n")
    write_zip(package, tmp_path / "a.zip")
    os.utime(package / "core.py", (0, 0))
    write_zip(package, tmp_path / "b.zip")

    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()


@pytest.mark.slow
def test_the_gcp_folder_is_served_by_functions_framework_as_deployed(tmp_path: Path) -> None:
    artifact = build("gcp", tmp_path / "out", progress=lambda _: None)
    folder = artifact.path

    assert (folder / "main.py").exists() and (folder / "core" / "gateway.py").exists()
    assert len(list((folder / "core" / "telemetry" / "price_exports").glob("genai-prices-*.json"))) == 1
    assert sorted(p.name for p in (folder / "handlers").iterdir() if p.is_dir()) == ["common", "gcp"]
    requirements = (folder / "requirements.txt").read_text().splitlines()
    assert any(line.startswith("functions-framework==") for line in requirements)
    assert any(line.startswith("google-cloud-storage==") for line in requirements)
    listen = port()
    framework = Path(sys.executable).parent / "functions-framework"
    process = EntryProcess([str(framework), "--target", "gateway", "--port", str(listen)],
                           {**clean_env(tmp_path, SKYRELAY_LOG_SINK="stdout://"), "PYTHONPATH": ""},
                           tmp_path / "ff.log", cwd=folder).start()
    try:
        wait_http(f"http://127.0.0.1:{listen}/v1/health", process, timeout_s=60)
    finally:
        process.stop()


def test_the_azure_folder_has_the_app_at_its_root(tmp_path: Path) -> None:
    artifact = build("azure", tmp_path / "out", progress=lambda _: None)
    folder = artifact.path

    assert json.loads((folder / "host.json").read_text())["extensions"]["http"]["routePrefix"] == ""
    assert sorted(p.name for p in (folder / "handlers").iterdir() if p.is_dir()) == ["azure", "common"]
    requirements = (folder / "requirements.txt").read_text()
    assert "azure-functions==1." in requirements and "azurefunctions-extensions-http-fastapi==" in requirements
    indexed = subprocess.run(
        [sys.executable, "-c", "import function_app; print(function_app.app.get_functions()[0].get_function_json())"],
        cwd=folder, env={**clean_env(tmp_path, SKYRELAY_LOG_SINK="stdout://"), "PYTHONPATH": str(folder)},
        capture_output=True, text=True, timeout=120, check=False)
    assert indexed.returncode == 0, indexed.stderr
    assert json.loads(indexed.stdout.strip().splitlines()[-1])["bindings"][0]["route"] == "/{*route}"


def test_a_rebuild_never_deletes_a_folder_it_did_not_make(tmp_path: Path) -> None:
    precious = tmp_path / "out" / "gcp"
    precious.mkdir(parents=True)
    (precious / "notes.txt").write_text("mine")

    failed = run_cli("--cloud", "gcp", "--out", str(tmp_path / "out"))

    assert failed.returncode == 1 and "was not made by `skyrelay bundle`" in failed.stderr
    assert (precious / "notes.txt").read_text() == "mine"
