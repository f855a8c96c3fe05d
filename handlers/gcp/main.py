"""Cloud Run functions entry: source ``main.py``, target ``gateway`` (functions-framework ≥ 3.10, ASGI mode).

    functions-framework --source handlers/gcp/main.py --target gateway      (locally, with PYTHONPATH=.)
    gcloud functions deploy skyrelay --gen2 --runtime python312 --entry-point gateway --trigger-http \\
        --source <skyrelay bundle --cloud gcp output>

``gateway`` is an ``@functions_framework.aio.http`` function, so the framework serves it from its ASGI server
(uvicorn workers under gunicorn) and streams what it returns. It returns the whole gateway app as the response: the
framework awaits ``response(scope, receive, send)``, and the app gets the raw scope and an unread body — every
route, FastAPI's own 404s and SSE streams pass through chunk by chunk. (functions-framework does not accept an
ASGI app as the target itself, and never runs its lifespan; see :mod:`handlers.common.invocation`.)

Cloud Run throttles an instance's CPU between requests, so each response is held open until its log records are
in the bucket (after the last byte of a stream); records that miss ``SKYRELAY_INVOCATION_FLUSH_TIMEOUT_S`` wait
in the spill folder for a later request.

Settings: ``SKYRELAY_*`` variables after :mod:`handlers.gcp.defaults` (GCS sink from ``SKYRELAY_LOG_BUCKET``).
"""

from __future__ import annotations

import os

from handlers.gcp.defaults import apply_function_defaults

apply_function_defaults(os.environ)

from functions_framework import aio  # noqa: E402 - the defaults must be in the environment before core reads them
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.types import ASGIApp, Receive, Scope, Send  # noqa: E402

from handlers.common.invocation import ServerlessGateway, scope_without_routing  # noqa: E402

serverless = ServerlessGateway.from_environment()
app = serverless.asgi()


class AppResponse(Response):
    """What ``gateway`` returns: the gateway app, run on the framework's connection with a clean scope.

    A Response only in type (the framework accepts those); it renders nothing itself."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.inner(scope_without_routing(scope), receive, send)


@aio.http
async def gateway(request: Request) -> AppResponse:
    """The function target: every path and method of the gateway."""
    return AppResponse(app)
