"""``POST /v1/messages`` and ``/v1/messages/count_tokens``: Anthropic's API in front of the one routing engine.

The request is translated to OpenAI's chat format and handled by :class:`~core.service.GatewayService` exactly like
``/v1/chat/completions`` (authentication, configs, routing, cache, limits, one log record), then the answer is
translated back: JSON to a Messages object, SSE to Messages events, errors to Anthropic's error shape. So the
``anthropic`` SDK reaches Claude on Anthropic, Bedrock or Vertex — or any other provider — unchanged. The SDK's
``x-api-key`` serves as the provider key when no ``Authorization`` is sent.
"""

from __future__ import annotations

import orjson

from core.api.anthropic_request import messages_request_to_chat
from core.api.anthropic_response import anthropic_error, chat_to_messages_response
from core.api.anthropic_stream import chat_stream_to_messages
from core.api.openai import decode_json_object
from core.errors import SkyrelayError
from core.providers.base import Operation
from core.service import GatewayResponse, GatewayService, IncomingCall


def _json(status: int, headers: list[tuple[str, str]], payload: object) -> GatewayResponse:
    return GatewayResponse(status, headers, body=orjson.dumps(payload))


def _anthropic_headers(call: IncomingCall) -> dict[str, str]:
    headers = dict(call.headers)
    if "authorization" not in headers and headers.get("x-api-key"):
        headers["authorization"] = f"Bearer {headers['x-api-key']}"
    headers["content-type"] = "application/json"
    return headers


class MessagesEndpoint:
    def __init__(self, service: GatewayService) -> None:
        self._service = service

    async def handle(self, call: IncomingCall, *, count_tokens: bool = False) -> GatewayResponse:
        try:
            body = decode_json_object(call.body)
            chat = messages_request_to_chat(body) if not count_tokens else _count_body(body)
        except SkyrelayError as error:
            rejected = self._service.reject(call.method, call.path, call.headers, error)
            return _json(error.status, rejected.headers, anthropic_error(error.status, error.body()))
        model = str(body.get("model"))
        operation = Operation.COUNT_TOKENS if count_tokens else Operation.CHAT
        inner = await self._service.handle(IncomingCall(operation=operation, method=call.method, path=call.path,
                                                        headers=_anthropic_headers(call), body=orjson.dumps(chat),
                                                        query=call.query))
        headers = [(k, v) for k, v in inner.headers if k.lower() != "content-type"]
        if inner.chunks is not None:
            return GatewayResponse(inner.status, headers, chunks=chat_stream_to_messages(inner.chunks, model),
                                   media_type="text/event-stream")
        payload = _loads(inner.body)
        if not 200 <= inner.status < 300:
            return _json(inner.status, headers, anthropic_error(inner.status, payload))
        if count_tokens:
            return _json(inner.status, headers, payload)
        return _json(inner.status, headers, chat_to_messages_response(payload, model))


def _count_body(body: dict[str, object]) -> dict[str, object]:
    return messages_request_to_chat({**body, "max_tokens": body.get("max_tokens") or 1})


def _loads(body: bytes | None) -> dict[str, object]:
    try:
        parsed = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
