"""Lambda HTTP events for the streaming runtime: which trigger sent an event, how to answer it, and the metadata
prelude that starts a streamed HTTP response.

Events become ASGI scopes through Mangum's own event classes (the buffered handler uses the same ones), so both
entries read headers, base64 bodies, cookies and query strings identically.

Only two triggers can receive a stream: Function URLs in ``RESPONSE_STREAM`` mode (payload 2.0 from a
``*.lambda-url.*`` domain) and API Gateway REST APIs whose integration uses ``responseTransferMode: STREAM``
(payload without ``version``). ALB and HTTP API events are answered with a buffered proxy response, as the
buffered handler would.
"""

from __future__ import annotations

import enum
from typing import Any

import orjson
from mangum.adapter import DEFAULT_TEXT_MIME_TYPES
from mangum.handlers import ALB, APIGateway, HTTPGateway
from mangum.types import LambdaConfig, LambdaHandler

#: Separates the JSON prelude from the body in ``application/vnd.awslambda.http-integration-response``.
PRELUDE_DELIMITER = b"\x00" * 8
HTTP_INTEGRATION_CONTENT_TYPE = "application/vnd.awslambda.http-integration-response"


class ResponseMode(enum.Enum):
    STREAM = "stream"
    BUFFERED = "buffered"


class UnsupportedEventError(ValueError):
    """Not an HTTP event this runtime serves (scheduled events, SQS, WebSocket APIs, VPC Lattice ...)."""


def mangum_config(base_path: str = "/") -> LambdaConfig:
    return LambdaConfig(api_gateway_base_path=base_path or "/", text_mime_types=[*DEFAULT_TEXT_MIME_TYPES],
                        exclude_headers=[])


def response_mode(event: dict[str, Any]) -> ResponseMode:
    """How the trigger that sent ``event`` expects its answer (see the module docstring)."""
    context = event.get("requestContext")
    if not isinstance(context, dict):
        raise UnsupportedEventError("the event has no requestContext: not an HTTP trigger")
    if "elb" in context:
        return ResponseMode.BUFFERED
    version = event.get("version")
    if version == "2.0" and isinstance(context.get("http"), dict):
        return ResponseMode.STREAM if ".lambda-url." in str(context.get("domainName", "")) else ResponseMode.BUFFERED
    if version == "1.0" and "httpMethod" in event:
        return ResponseMode.BUFFERED  # HTTP API, payload format 1.0
    if version is None and "resource" in event and "httpMethod" in event:
        return ResponseMode.STREAM  # REST API
    raise UnsupportedEventError("not an API Gateway, Function URL or ALB event")


def event_adapter(event: dict[str, Any], context: Any, config: LambdaConfig) -> LambdaHandler:
    """Mangum's class for the event: ``.scope``, ``.body``, and ``__call__(response)`` → proxy response dict."""
    for adapter in (ALB, HTTPGateway, APIGateway):
        if adapter.infer(event, context, config):
            return adapter(event, context, config)
    raise UnsupportedEventError("not an API Gateway, Function URL or ALB event")


def prelude(event: dict[str, Any], status: int, raw_headers: list[tuple[bytes, bytes]]) -> bytes:
    """The JSON metadata and the 8-byte delimiter that start a streamed HTTP integration response.

    Function URLs (payload 2.0) take ``headers`` (repeated names joined with commas) and ``cookies``; REST APIs take
    ``headers`` and, for repeated names, ``multiValueHeaders``.
    """
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    cookies: list[str] = []
    for raw_name, raw_value in raw_headers:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name == "set-cookie":
            cookies.append(value)
        multi.setdefault(name, []).append(value)
    metadata: dict[str, Any] = {"statusCode": status}
    if event.get("version") == "2.0":
        for name, values in multi.items():
            if name != "set-cookie":
                single[name] = ",".join(values)
        metadata.update(headers=single, cookies=cookies)
    else:
        single = {name: values[0] for name, values in multi.items() if len(values) == 1}
        metadata.update(headers=single,
                        multiValueHeaders={name: values for name, values in multi.items() if len(values) > 1})
    return orjson.dumps(metadata) + PRELUDE_DELIMITER
