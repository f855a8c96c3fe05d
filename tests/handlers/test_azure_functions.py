"""The Azure Functions entry (``handlers/azure/function_app.py``, object ``app``) with Azurite as its Blob storage.

* Buffered: the indexed function is called with real ``azure.functions.HttpRequest`` objects, as the Python worker
  calls it (function metadata, AsgiFunctionApp's ASGI translation and lifespan all run).
* Streaming: the HTTP streaming extension's own ``WebApp``/``WebServer`` (uvicorn) serve the indexed function, the
  way the worker does once the host has forwarded a request to it; the route parameter the host would send is set
  with the extension's synchronizer.

Not run here: the Functions host (.NET, not on any package registry) and the worker's gRPC channel to it — so host
routing, auth-level enforcement and the host's proxying to the worker's server are not exercised.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import azure.functions as func
import fastapi
import httpx
import pytest
import pytest_asyncio

from tests.fakes.openai_upstream import FakeOpenAI
from tests.handlers.conftest import chat_body, chat_headers
from tests.handlers.processes import port, records_of
from tests.support.emulators import AZURITE_ACCOUNT, ROOT, Azurite

pytestmark = pytest.mark.slow
FUNCTION_APP = ROOT / "handlers" / "azure" / "function_app.py"
CHUNK_DELAY_S = 0.25


class InvocationContext(func.Context):
    """The context the worker passes next to the request."""

    def __init__(self) -> None:
        self._invocation_id = str(uuid.uuid4())

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    function_name = "skyrelay"
    function_directory = "/home/site/wwwroot"
    thread_local_storage = None
    trace_context = None
    retry_context = None


@pytest.fixture(scope="module")
def azurite() -> Iterator[Azurite]:
    emulator = Azurite().start()
    yield emulator
    emulator.stop()


class Indexed:
    """function_app.py imported and indexed once, as the worker does (``get_functions`` may only run once)."""

    def __init__(self, module: ModuleType) -> None:
        self.module = module
        self.app = module.app
        [self.function] = module.app.get_functions()
        self.call = self.function.get_user_function()


def load_function_app(azurite: Azurite, home: Path, prefix: str, **env: str) -> Indexed:
    """Imports function_app.py as the worker would (a fresh module), with the platform's and the user's settings."""
    os.environ.update({
        **azurite.env(), "SKYRELAY_LOG_STORAGE_ACCOUNT": AZURITE_ACCOUNT, "SKYRELAY_LOG_CONTAINER": azurite.container,
        "SKYRELAY_LOG_PREFIX": prefix, "SKYRELAY_AZURE_AUTH_LEVEL": "anonymous", "TMPDIR": str(home),
        "WEBSITE_SITE_NAME": "skyrelay-eastus", "WEBSITE_INSTANCE_ID": "5f4e3d2c1b0a99887766", **env})
    for name in ("SKYRELAY_LOG_SINK", "SKYRELAY_REPLICA_ID", "SKYRELAY_LOG_SPILL_DIR"):
        os.environ.pop(name, None)
    spec = importlib.util.spec_from_file_location(f"function_app_{prefix.replace('-', '_')}", FUNCTION_APP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return Indexed(module)


@pytest.fixture(scope="module")
def environment() -> Iterator[None]:
    """The function apps read (and their defaults write) the process environment: restore it afterwards."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


# --- buffered: AsgiFunctionApp ----------------------------------------------------------------------------------
@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def buffered(environment: None, azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Any:
    indexed = load_function_app(azurite, tmp_path_factory.mktemp("azure-buffered"), "azure-buffered")
    yield indexed
    if indexed.app.startup_task_done:
        await indexed.app.middleware.notify_shutdown()
        indexed.app.startup_task_done = False  # its __del__ would run the shutdown again on another loop


async def invoke(indexed: Indexed, method: str, path: str, headers: dict[str, str] | None = None,
                 body: bytes = b"") -> func.HttpResponse:
    request = func.HttpRequest(method=method, url=f"https://skyrelay-eastus.azurewebsites.net{path}",
                               headers=headers or {}, params={}, route_params={"route": path.lstrip("/")}, body=body)
    return await indexed.call(request, InvocationContext())


@pytest.mark.asyncio(loop_scope="module")
async def test_the_buffered_function_is_indexed_for_every_path(buffered: Indexed) -> None:
    function = buffered.function
    metadata = json.loads(function.get_function_json())
    trigger = metadata["bindings"][0]
    host = json.loads((ROOT / "handlers" / "azure" / "host.json").read_text())

    assert function.get_function_name() == "skyrelay"
    assert (trigger["type"], trigger["route"], trigger["authLevel"]) == ("httpTrigger", "/{*route}", "ANONYMOUS")
    assert set(trigger["methods"]) >= {"GET", "POST"}
    assert host["extensions"]["http"]["routePrefix"] == ""  # paths stay the gateway's own: /v1/chat/completions


@pytest.mark.asyncio(loop_scope="module")
async def test_a_chat_is_answered_and_logged_to_blob_before_the_function_returns(
        buffered: Any, fake_openai: FakeOpenAI, azurite: Azurite) -> None:
    response = await invoke(buffered, "POST", "/v1/chat/completions", chat_headers(fake_openai),
                            json.dumps(chat_body()).encode())

    assert response.status_code == 200
    assert json.loads(response.get_body())["choices"][0]["message"]["content"] == "Hello from the fake upstream."
    trace_id = response.headers["x-portkey-trace-id"]
    [record] = [r for r in records_of(azurite.objects("azure-buffered")) if r["trace_id"] == trace_id]
    assert record["replica"] == "skyrelay-eastus-5f4e3d2c1b0a"
    assert "sk-handler-test-key" not in json.dumps(record)


@pytest.mark.asyncio(loop_scope="module")
async def test_the_buffered_function_returns_a_stream_whole(buffered: Any, fake_openai: FakeOpenAI) -> None:
    response = await invoke(buffered, "POST", "/v1/chat/completions", chat_headers(fake_openai),
                            json.dumps(chat_body(stream=True)).encode())

    body = response.get_body()
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    assert body.count(b"data: ") == len(FakeOpenAI.STREAM_WORDS) + 3 and body.endswith(b"data: [DONE]\n\n")


@pytest.mark.asyncio(loop_scope="module")
async def test_gateway_routes_and_errors_pass_through_the_function(buffered: Any) -> None:
    health = await invoke(buffered, "GET", "/v1/health")
    missing = await invoke(buffered, "GET", "/v2/nothing")

    assert health.status_code == 200 and json.loads(health.get_body()) == {"status": "ok"}
    assert missing.status_code == 404 and json.loads(missing.get_body())["error"]["type"] == "not_found_error"


# --- streaming: the HTTP streaming extension's own server ---------------------------------------------------------
class ExtensionServer:
    """The extension's WebApp and WebServer on a loop of their own, dispatching to the indexed function."""

    def __init__(self, indexed: Indexed) -> None:
        self.indexed = indexed
        self.port = port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.serving: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ExtensionServer:
        from azurefunctions.extensions.base import RequestTrackerMeta
        from azurefunctions.extensions.http.fastapi import WebApp, WebServer

        user_function = self.indexed.call
        synchronizer = RequestTrackerMeta.get_synchronizer()

        async def forwarded(request: fastapi.Request) -> Any:
            synchronizer.sync_route_params(request, {"route": request.path_params["path"]})
            return await user_function(request)

        web_app = WebApp()
        web_app.route(forwarded)
        self.thread.start()
        self.serving = asyncio.run_coroutine_threadsafe(WebServer("127.0.0.1", self.port, web_app).serve(), self.loop)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
            if self.serving.done():
                break
        raise RuntimeError(f"the extension's web server did not start: {self.serving}")

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.indexed.module.serverless.shutdown(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.serving.cancel)
        time.sleep(0.2)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def streaming(environment: None, azurite: Azurite, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[ExtensionServer]:
    indexed = load_function_app(azurite, tmp_path_factory.mktemp("azure-stream"), "azure-stream",
                                SKYRELAY_AZURE_HTTP_STREAMING="true")
    server = ExtensionServer(indexed).start()
    yield server
    server.stop()


def test_the_streaming_app_is_indexed_with_http_streaming_on(streaming: ExtensionServer) -> None:
    from azurefunctions.extensions.base import HttpV2FeatureChecker

    trigger = json.loads(streaming.indexed.function.get_function_json())["bindings"][0]
    assert (streaming.indexed.function.get_function_name(), trigger["route"]) == ("skyrelay", "{*route}")
    assert not isinstance(streaming.indexed.app, func.AsgiFunctionApp)
    assert HttpV2FeatureChecker.http_v2_enabled()  # what makes the worker start its HTTP streaming server


def test_a_stream_leaves_the_extension_server_chunk_by_chunk(streaming: ExtensionServer, fake_openai: FakeOpenAI,
                                                             azurite: Azurite) -> None:
    fake_openai.chunk_delay_s = CHUNK_DELAY_S
    arrivals: list[float] = []
    parts: list[bytes] = []
    with httpx.stream("POST", f"{streaming.url}/v1/chat/completions", headers=chat_headers(fake_openai),
                      json=chat_body(stream=True), timeout=30) as response:
        for chunk in response.iter_raw():
            arrivals.append(time.monotonic())
            parts.append(chunk)

    body = b"".join(parts)
    assert response.status_code == 200 and response.headers["content-type"] == "text/event-stream"
    assert response.headers["x-portkey-provider"] == "openai"
    assert body.count(b"data: ") == len(FakeOpenAI.STREAM_WORDS) + 3 and body.endswith(b"data: [DONE]\n\n")
    assert len(arrivals) >= len(FakeOpenAI.STREAM_WORDS) + 2
    assert arrivals[-1] - arrivals[0] >= CHUNK_DELAY_S * (len(FakeOpenAI.STREAM_WORDS) - 1)
    logged = [r for r in records_of(azurite.objects("azure-stream"))
              if r["trace_id"] == response.headers["x-portkey-trace-id"]]
    assert len(logged) == 1 and logged[0]["stream"] is True


def test_buffered_answers_and_errors_through_the_streaming_function(streaming: ExtensionServer,
                                                                   fake_openai: FakeOpenAI) -> None:
    chat = httpx.post(f"{streaming.url}/v1/chat/completions", headers=chat_headers(fake_openai), json=chat_body())
    missing = httpx.get(f"{streaming.url}/v2/nothing")

    assert chat.status_code == 200 and chat.json()["choices"][0]["message"]["content"]
    assert int(chat.headers["content-length"]) == len(chat.content)
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
