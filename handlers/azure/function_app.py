"""Azure Functions entry (Python v2 programming model): ``function_app.py``, object ``app``, with ``host.json``.

* Buffered (default): :mod:`handlers.azure.buffered`, the gateway app behind ``AsgiFunctionApp``.
* Streaming (``SKYRELAY_AZURE_HTTP_STREAMING=true``, app setting ``PYTHON_ENABLE_INIT_INDEXING=1``):
  :mod:`handlers.azure.streaming`, through azurefunctions-extensions-http-fastapi.

One function, ``skyrelay``, route ``{*route}`` (host.json sets an empty route prefix, so paths are the gateway's
own: ``/v1/chat/completions``). ``SKYRELAY_AZURE_AUTH_LEVEL`` is the function's auth level: ``function`` by
default (callers send ``x-functions-key``), ``anonymous`` when gateway keys do the authentication.

Built once per worker process at import; each invocation flushes its log records before it completes (the
platform may throttle or stop the instance right after). Settings: ``SKYRELAY_*`` variables after
:mod:`handlers.azure.defaults` (Blob sink from the storage account, managed identity).
"""

from __future__ import annotations

import os

from handlers.azure.defaults import apply_function_defaults

apply_function_defaults(os.environ)

import azure.functions as func  # noqa: E402 - the defaults must be in the environment before core reads them

from handlers.common.invocation import ServerlessGateway  # noqa: E402


def http_streaming_enabled() -> bool:
    return os.environ.get("SKYRELAY_AZURE_HTTP_STREAMING", "").strip().lower() in ("1", "true", "yes", "on")


def auth_level() -> func.AuthLevel:
    name = os.environ.get("SKYRELAY_AZURE_AUTH_LEVEL", "function").strip().upper()
    try:
        return func.AuthLevel[name]
    except KeyError:
        raise ValueError(f"SKYRELAY_AZURE_AUTH_LEVEL must be function, anonymous or admin, not {name.lower()!r}"
                         ) from None


serverless = ServerlessGateway.from_environment()
app: func.FunctionRegister
if http_streaming_enabled():
    from handlers.azure.streaming import streaming_function_app

    app = streaming_function_app(serverless, auth_level())
else:
    from handlers.azure.buffered import buffered_function_app

    app = buffered_function_app(serverless, auth_level())
