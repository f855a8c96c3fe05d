"""The buffered Azure function: the gateway app behind ``azure.functions.AsgiFunctionApp``.

One function (``skyrelay``, route ``{*route}``, every method) serves every path. The ASGI middleware of
azure-functions collects the whole body before the host answers (a requested stream arrives complete at the end):
use the streaming variant for clients that read tokens as they come.
"""

from __future__ import annotations

import azure.functions as func

from handlers.common.invocation import ServerlessGateway


def buffered_function_app(serverless: ServerlessGateway, auth_level: func.AuthLevel) -> func.AsgiFunctionApp:
    return func.AsgiFunctionApp(app=serverless.asgi(), http_auth_level=auth_level, function_name="skyrelay")
