"""AWS Lambda entry, streaming: our own runtime loop speaking the Runtime API's response-streaming mode.

Deploy the same zip as the buffered handler on a Python managed runtime, with
``AWS_LAMBDA_EXEC_WRAPPER=/var/task/handlers/aws/stream_bootstrap`` (that script execs ``python -m
handlers.aws.streaming`` in place of the managed runtime client) and either a Function URL with ``InvokeMode:
RESPONSE_STREAM`` or an API Gateway REST integration with ``responseTransferMode: STREAM`` (URI
``.../2021-11-15/functions/<arn>/response-streaming-invocations``). In a container image, make the same script the
entry point.

Why this and not the Lambda Web Adapter (LWA) layer running uvicorn:

* no second process and no loopback HTTP hop per request: the event becomes an ASGI scope (Mangum's event classes,
  as in the buffered handler) and each ``http.response.body`` message becomes one chunk on the Runtime API
  connection the moment the app sends it;
* the runtime knows when an invocation ends, so the log flush runs after the last chunk and before the next
  ``GET /invocation/next`` — the Invoke phase lasts until then, the client does not wait for it, and nothing is
  left for a frozen process (behind LWA the app cannot tell when Lambda will freeze it);
* errors follow the Runtime API contract: ``/invocation/{id}/error`` before the first byte, the
  ``Lambda-Runtime-Function-Error-Type``/``-Body`` trailers after it;
* it runs and is tested here end to end against a Runtime API double; LWA is a Rust binary from an ECR image or a
  Lambda layer, neither reachable from a package registry.

What it gives up: LWA also serves ALB/HTTP API events with no code of ours; here those events get a buffered
answer (they cannot stream anyway), and WebSocket or non-HTTP events are refused with an invocation error.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.types import Message

from handlers.aws.defaults import apply_lambda_defaults
from handlers.aws.events import (
    HTTP_INTEGRATION_CONTENT_TYPE,
    ResponseMode,
    UnsupportedEventError,
    event_adapter,
    mangum_config,
    prelude,
    response_mode,
)
from handlers.aws.runtime_api import Invocation, ResponseStream, RuntimeApiClient
from handlers.common.invocation import ServerlessGateway

logger = logging.getLogger("skyrelay.handlers")


@dataclass
class LambdaContext:
    """The context object handlers receive (the attributes awslambdaric provides), built from the invocation."""

    invocation: Invocation
    function_name: str = field(default_factory=lambda: os.environ.get("AWS_LAMBDA_FUNCTION_NAME", ""))
    function_version: str = field(default_factory=lambda: os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", ""))
    memory_limit_in_mb: str = field(default_factory=lambda: os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", ""))
    log_group_name: str = field(default_factory=lambda: os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", ""))
    log_stream_name: str = field(default_factory=lambda: os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", ""))

    @property
    def aws_request_id(self) -> str:
        return self.invocation.request_id

    @property
    def invoked_function_arn(self) -> str:
        return self.invocation.function_arn

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.invocation.deadline_ms - int(time.time() * 1000))

    def remaining_s(self) -> float | None:
        return self.get_remaining_time_in_millis() / 1000.0 if self.invocation.deadline_ms else None


class StreamingRuntime:
    """Serves invocations one after the other, for the life of the execution environment."""

    def __init__(self, serverless: ServerlessGateway, client: RuntimeApiClient, *, base_path: str = "/") -> None:
        self.serverless = serverless
        self.client = client
        self.config = mangum_config(base_path)

    async def run_forever(self) -> None:
        while True:
            await self.run_once()

    async def run_once(self) -> None:
        await self.invoke(await self.client.next_invocation())

    async def invoke(self, invocation: Invocation) -> None:
        context = LambdaContext(invocation)
        try:
            event = orjson.loads(invocation.event)
            if not isinstance(event, dict):
                raise UnsupportedEventError("the event is not a JSON object")
            mode = response_mode(event)
            adapter = event_adapter(event, context, self.config)
        except (orjson.JSONDecodeError, UnsupportedEventError) as exc:
            logger.warning("invocation %s: unsupported event (%s)", invocation.request_id, exc)
            await self.client.post_error(invocation.request_id, "Runtime.UnsupportedEvent", str(exc))
            return
        await self.serverless.ensure_started()
        try:
            if mode is ResponseMode.STREAM:
                await self._stream(invocation, event, adapter)
            else:
                await self._buffered(invocation, adapter)
        finally:
            await self.serverless.flush(context.remaining_s())

    async def _stream(self, invocation: Invocation, event: dict[str, Any], adapter: Any) -> None:
        request_id = invocation.request_id
        body = adapter.body
        done = asyncio.Event()
        stream: ResponseStream | None = None
        request_sent = False

        async def receive() -> Message:
            nonlocal request_sent
            if not request_sent:
                request_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await done.wait()  # the app learns the response ended, or the client went away
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            nonlocal stream
            if message["type"] == "http.response.start":
                stream = await self.client.open_stream(request_id, HTTP_INTEGRATION_CONTENT_TYPE)
                await self._write(stream, done, prelude(event, message["status"], message.get("headers", [])))
            elif message["type"] == "http.response.body" and stream is not None and not stream.finished:
                await self._write(stream, done, message.get("body", b""))
                if not message.get("more_body", False):
                    await stream.finish()
                    done.set()

        try:
            await self.serverless.app(adapter.scope, receive, send)
        except Exception as exc:  # noqa: BLE001 - any failure of the app becomes the invocation's error, never a hang
            logger.error("invocation %s failed: %s", request_id, type(exc).__name__)
            await self._fail(request_id, stream, "Runtime.HandlerError", type(exc).__name__)
            return
        finally:
            done.set()
        if stream is None or not stream.finished:
            await self._fail(request_id, stream, "Runtime.IncompleteResponse", "the app ended without a full response")

    @staticmethod
    async def _write(stream: ResponseStream, done: asyncio.Event, data: bytes) -> None:
        try:
            await stream.write(data)
        except OSError:
            done.set()  # the caller disconnected: the app's disconnect watcher cancels the upstream call
            stream.abort()
            raise

    async def _fail(self, request_id: str, stream: ResponseStream | None, error_type: str, message: str) -> None:
        if stream is None:
            await self.client.post_error(request_id, error_type, message)
        elif not stream.finished:
            try:
                await stream.finish(error=(error_type, message))
            except OSError:
                stream.abort()

    async def _buffered(self, invocation: Invocation, adapter: Any) -> None:
        """ALB and HTTP API events: the whole answer as one proxy-integration result (as Mangum would build it)."""
        response: dict[str, Any] = {"status": 500, "headers": [], "body": b""}
        parts: list[bytes] = []
        complete = asyncio.Event()
        request_sent = False

        async def receive() -> Message:
            nonlocal request_sent
            if not request_sent:
                request_sent = True
                return {"type": "http.request", "body": adapter.body, "more_body": False}
            await complete.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                response["status"], response["headers"] = message["status"], message.get("headers", [])
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
                if not message.get("more_body", False):
                    complete.set()

        try:
            await self.serverless.app(adapter.scope, receive, send)
        except Exception as exc:  # noqa: BLE001 - reported as the invocation's error
            logger.error("invocation %s failed: %s", invocation.request_id, type(exc).__name__)
            await self.client.post_error(invocation.request_id, "Runtime.HandlerError", type(exc).__name__)
            return
        finally:
            complete.set()
        response["body"] = b"".join(parts)
        await self.client.post_response(invocation.request_id, orjson.dumps(adapter(response)))


def describe_init_error(exc: BaseException) -> str:
    """Names the failure without echoing values (a settings error would quote the offending value, maybe a secret)."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            fields = sorted({".".join(str(part) for part in error.get("loc", ())) for error in errors()})
        except (TypeError, AttributeError):
            fields = []
        if fields:
            return f"{type(exc).__name__}: invalid settings {', '.join(fields)}"
    return type(exc).__name__


async def serve(address: str) -> int:
    client = RuntimeApiClient(address)
    try:
        serverless = ServerlessGateway.from_environment()
    except Exception as exc:  # noqa: BLE001 - reported to Lambda, which then retries the init
        message = describe_init_error(exc)
        logger.error("init failed: %s", message)
        await client.post_init_error("Runtime.InitError", message)
        return 1
    runtime = StreamingRuntime(serverless, client, base_path=os.environ.get("SKYRELAY_API_GATEWAY_BASE_PATH", "/"))
    await runtime.run_forever()
    return 0


def main() -> int:
    logging.basicConfig(level=os.environ.get("SKYRELAY_LOG_LEVEL", "info").upper(), stream=sys.stderr,
                        format="%(levelname)s %(name)s %(message)s")
    apply_lambda_defaults(os.environ)
    address = os.environ.get("AWS_LAMBDA_RUNTIME_API")
    if not address:
        print("handlers.aws.streaming: AWS_LAMBDA_RUNTIME_API is not set (this runs inside Lambda)", file=sys.stderr)
        return 2
    return asyncio.run(serve(address))


if __name__ == "__main__":
    raise SystemExit(main())
