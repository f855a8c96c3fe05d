"""AWS Lambda entry, buffered: handler ``handlers/aws/handler.handler`` (Mangum).

Serves API Gateway REST (v1) and HTTP API (payload 1.0 and 2.0) events, ALB events (single- and multi-value
headers) and Function URL events in BUFFERED mode, with base64 bodies both ways. A stream requested here arrives
whole at the end (Mangum collects every body chunk, and those triggers cannot stream anyway); streaming clients use
the streaming entry, :mod:`handlers.aws.streaming`.

Built once per execution environment, at import (the init phase): the gateway, its app, one event loop. Mangum's
lifespan is off — it would start and stop the gateway on every invocation — and :class:`FlushingApp` starts the
gateway on the first request instead. Each invocation flushes its log records before returning, with the deadline
from ``context.get_remaining_time_in_millis()``.

Settings: ``SKYRELAY_*`` variables after :mod:`handlers.aws.defaults` (S3 sink from ``SKYRELAY_LOG_BUCKET``, spill
under ``/tmp``, replica id from the log stream); ``SKYRELAY_API_GATEWAY_BASE_PATH`` strips a custom domain's base
path mapping.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from handlers.aws.defaults import apply_lambda_defaults

apply_lambda_defaults(os.environ)

from mangum import Mangum  # noqa: E402 - the defaults must be in the environment before core reads its settings
from starlette.types import Scope  # noqa: E402

from handlers.common.invocation import ServerlessGateway  # noqa: E402


def remaining_time(scope: Scope) -> float | None:
    """Seconds left in this invocation, from the Lambda context Mangum puts in the scope."""
    remaining_ms = getattr(scope.get("aws.context"), "get_remaining_time_in_millis", None)
    return remaining_ms() / 1000.0 if remaining_ms is not None else None


# One loop for the life of the execution environment: Mangum runs every invocation on the current loop, and the
# gateway's upstream pools, sink client and background tasks belong to the loop they were created on.
asyncio.set_event_loop(asyncio.new_event_loop())
serverless = ServerlessGateway.from_environment()
adapter = Mangum(serverless.asgi(remaining_time), lifespan="off",
                 api_gateway_base_path=os.environ.get("SKYRELAY_API_GATEWAY_BASE_PATH", "/"))


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda handler: one HTTP event in, one proxy-integration response dict out."""
    return adapter(event, context)
