"""Real storage emulators on random loopback ports, started by the tests themselves.

* S3: moto's server (``ThreadedMotoServer``, in this process; its state survives a server restart).
* GCS: gcp-storage-emulator (a subprocess, in-memory), reached through ``STORAGE_EMULATOR_HOST``.
* Azure Blob: Azurite (npm; ``make services`` installs it under ``.cache/azurite``), reached through a connection
  string with Azurite's published development account.

Each exposes ``env`` (the variables a gateway process needs to reach it), ``objects(prefix)`` (every stored object
under a prefix, decompressed, by name) and ``stop()``. :class:`ToggleProxy` sits in front of an emulator so a test
can take the "bucket" down and bring it back without losing what it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]

#: Azurite's well-known development account (published in Azurite's README; not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, OSError):
            if check():
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not become ready within {timeout_s:.0f} s")


def gunzip_objects(raw: dict[str, bytes]) -> dict[str, bytes]:
    return {name: gzip.decompress(data) for name, data in raw.items()}


class MotoS3:
    """moto's S3 (and KMS, STS) server in a background thread of the test process."""

    def __init__(self, bucket: str = "gw-logs") -> None:
        from moto.server import ThreadedMotoServer

        self.bucket = bucket
        self.port = free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.kms_key_id = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoS3:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
        self._server.start()
        wait_until(lambda: httpx.get(f"{self.url}/moto-api/").status_code == 200, 15, "moto")
        client = self.client()
        client.create_bucket(Bucket=self.bucket)
        self.kms_key_id = self.client("kms").create_key()["KeyMetadata"]["KeyId"]
        return self

    def client(self, service: str = "s3", endpoint: str | None = None) -> Any:
        import botocore.session

        return botocore.session.get_session().create_client(
            service, region_name="us-east-1", endpoint_url=endpoint or self.url, aws_access_key_id="testing",
            aws_secret_access_key="testing")

    def env(self, endpoint: str | None = None) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": endpoint or self.url, "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}

    def raw_objects(self, prefix: str) -> dict[str, bytes]:
        client = self.client()
        out: dict[str, bytes] = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                out[item["Key"]] = client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
        return out

    def objects(self, prefix: str) -> dict[str, bytes]:
        return gunzip_objects(self.raw_objects(prefix))

    def head(self, key: str) -> dict[str, Any]:
        return dict(self.client().head_object(Bucket=self.bucket, Key=key))

    def stop(self) -> None:
        self._server.stop()


class GcsEmulator:
    """gcp-storage-emulator in a subprocess, in memory, with one bucket."""

    def __init__(self, bucket: str = "gw-logs") -> None:
        self.bucket = bucket
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> GcsEmulator:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "gcp_storage_emulator", "start", "-H", "127.0.0.1", "--port", str(self.port),
             "--in-memory", "--default-bucket", self.bucket, "-q"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: httpx.get(f"{self.url}/storage/v1/b").status_code == 200, 15, "gcp-storage-emulator")
        return self

    def env(self, endpoint: str | None = None) -> dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": endpoint or self.url, "GOOGLE_CLOUD_PROJECT": "test"}

    def raw_objects(self, prefix: str) -> dict[str, bytes]:
        from google.cloud import storage

        with _patched_env(self.env()):
            client = storage.Client(project="test")
            return {blob.name: blob.download_as_bytes(raw_download=True)
                    for blob in client.list_blobs(self.bucket, prefix=prefix)}

    def objects(self, prefix: str) -> dict[str, bytes]:
        return gunzip_objects(self.raw_objects(prefix))

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)


def azurite_binary() -> str:
    """Azurite's blob server: $SKYRELAY_AZURITE, on PATH, or installed by scripts/install-services.sh."""
    candidates = [os.environ.get("SKYRELAY_AZURITE"), shutil.which("azurite-blob"),
                  str(ROOT / ".cache" / "azurite" / "node_modules" / ".bin" / "azurite-blob")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("Azurite is not installed: run `make services` (scripts/install-services.sh)")


class Azurite:
    """Azurite's Blob service in a subprocess, data in a temporary folder, one container."""

    def __init__(self, container: str = "gw-logs") -> None:
        self.container = container
        self.port = free_port()
        self._dir = tempfile.mkdtemp(prefix="azurite-")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connection_string(self, endpoint: str | None = None) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
                f"BlobEndpoint={endpoint or self.url}/{AZURITE_ACCOUNT};")

    def start(self) -> Azurite:
        self._proc = subprocess.Popen(
            [azurite_binary(), "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--location", self._dir,
             "--skipApiVersionCheck", "--loose", "--silent", "--disableTelemetry"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_until(lambda: httpx.get(f"{self.url}/{AZURITE_ACCOUNT}?comp=list").status_code < 500, 30, "Azurite")
        self._service().create_container(self.container)
        return self

    def _service(self) -> Any:
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string())

    def env(self, endpoint: str | None = None) -> dict[str, str]:
        return {"AZURE_STORAGE_CONNECTION_STRING": self.connection_string(endpoint)}

    @property
    def sink_url(self) -> str:
        return f"https://{AZURITE_ACCOUNT}.blob.core.windows.net/{self.container}"

    def raw_objects(self, prefix: str) -> dict[str, bytes]:
        container = self._service().get_container_client(self.container)
        return {blob.name: container.download_blob(blob.name).readall()
                for blob in container.list_blobs(name_starts_with=prefix)}

    def objects(self, prefix: str) -> dict[str, bytes]:
        return gunzip_objects(self.raw_objects(prefix))

    def stop(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, 15)
            self._proc.wait(10)
        shutil.rmtree(self._dir, ignore_errors=True)


@contextlib.contextmanager
def _patched_env(values: dict[str, str]) -> Any:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class ToggleProxy:
    """A TCP proxy on a random loopback port; ``down()`` cuts every connection and refuses new ones (accepts and
    closes at once, so clients fail fast), ``up()`` restores it. The emulator behind it keeps its data."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.is_up = True
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ToggleProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.is_up:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, RuntimeError):
                pass
            finally:
                dst.close()
                self._writers.discard(dst)

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def down(self) -> None:
        def cut() -> None:
            self.is_up = False
            for writer in list(self._writers):
                writer.close()
            self._writers.clear()

        self._loop.call_soon_threadsafe(cut)
        time.sleep(0.05)

    def up(self) -> None:
        self.is_up = True

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers):
                writer.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
