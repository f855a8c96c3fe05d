"""The streaming Azure function, through the HTTP streaming extension (azurefunctions-extensions-http-fastapi).

With the extension imported, the Python worker runs a uvicorn server of its own; the Functions host forwards each
HTTP request to it and the worker calls this function with the FastAPI ``Request`` — body unread — and streams
the ``StreamingResponse`` it returns. The extension is all-or-nothing for the app (it cannot be mixed with
``AsgiFunctionApp``), hence a separate function app, chosen with ``SKYRELAY_AZURE_HTTP_STREAMING=true``. It needs
the app setting ``PYTHON_ENABLE_INIT_INDEXING=1`` and Functions host 4.34.1 or newer.

The function runs the gateway app on the request's scope and relays what it sends: status and headers as they are,
each body chunk as it comes, then the log flush, then the end of the response.

(No ``from __future__ import annotations`` here: the worker reads the function's annotations as real types.)
"""

import asyncio
from collections.abc import AsyncIterator

import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope

from handlers.common.invocation import ServerlessGateway, scope_without_routing

METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]


class ResponseBridge:
    """Runs the app in a task and hands its response messages to whoever relays them."""

    def __init__(self, app: ASGIApp, scope: Scope, receive: Receive) -> None:
        self._messages: asyncio.Queue[Message | None] = asyncio.Queue()
        self._task = asyncio.ensure_future(self._run(app, scope, receive))

    async def _run(self, app: ASGIApp, scope: Scope, receive: Receive) -> None:
        try:
            await app(scope, receive, self._messages.put)
        finally:
            self._messages.put_nowait(None)

    async def start(self) -> Message:
        message = await self._messages.get()
        if message is None or message["type"] != "http.response.start":
            await self.close()
            raise RuntimeError("the gateway app ended without starting a response")
        return message

    async def body(self, serverless: ServerlessGateway) -> AsyncIterator[bytes]:
        flushed = False
        try:
            while (message := await self._messages.get()) is not None:
                if message["type"] != "http.response.body":
                    continue
                if message.get("body"):
                    yield message["body"]
                if not message.get("more_body", False):
                    break
            flushed = True
            await serverless.flush(None)
        finally:
            await self.close()
            if not flushed:  # the client left mid-stream: the record of the cut stream is still flushed
                await serverless.flush(None)

    async def close(self) -> None:
        if not self._task.done():
            self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def relay(serverless: ServerlessGateway, request: Request) -> StreamingResponse:
    await serverless.ensure_started()
    scope = scope_without_routing(request.scope)
    route = request.path_params.get("route")
    if route is not None:  # the host's {*route} parameter is the path after the (empty) route prefix
        scope["path"] = "/" + str(route).lstrip("/")
        scope["raw_path"] = scope["path"].encode()
    bridge = ResponseBridge(serverless.app, scope, request.receive)
    start = await bridge.start()
    response = StreamingResponse(bridge.body(serverless), status_code=start["status"])
    response.raw_headers = [(bytes(name), bytes(value)) for name, value in start.get("headers", [])]
    return response


def streaming_function_app(serverless: ServerlessGateway, auth_level: func.AuthLevel) -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=auth_level)

    @app.function_name("skyrelay")
    @app.route(route="{*route}", methods=METHODS)
    async def skyrelay(req: Request) -> StreamingResponse:
        return await relay(serverless, req)

    return app
