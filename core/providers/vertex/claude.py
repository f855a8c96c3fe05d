"""Claude on Vertex: ``rawPredict`` / ``streamRawPredict`` over the shared Anthropic Messages translation.

Vertex differs from the direct API only in the envelope: the model is in the URL (not the body), the body carries
``anthropic_version: vertex-2023-10-16`` (or the caller's ``anthropic_version`` option), beta flags travel in the
body as ``anthropic_beta``, and a streaming call says ``"stream": true`` in the body as well as in the method.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from core.providers.anthropic_messages.request import chat_to_messages
from core.providers.anthropic_messages.response import messages_to_chat
from core.providers.anthropic_messages.stream import MessagesStreamTranslator, translate_messages_stream
from core.providers.base import ProviderRequest

VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"
PROVIDER = "vertex-ai"


def strict_compliance(request: ProviderRequest) -> bool:
    """Portkey's ``x-portkey-strict-open-ai-compliance: false`` adds reasoning ``content_blocks``."""
    return request.client_headers.get("x-portkey-strict-open-ai-compliance", "").strip().lower() != "false"


def _beta_flags(request: ProviderRequest) -> list[str]:
    value: Any = (request.target.option("anthropic_beta") or request.client_headers.get("anthropic-beta")
                  or request.body.get("anthropic_beta"))
    if isinstance(value, str):
        return [flag.strip() for flag in value.split(",") if flag.strip()]
    if isinstance(value, list):
        return [str(flag) for flag in value]
    return []


class ClaudeOnVertex:
    publisher = "anthropic"

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    def method(self, stream: bool) -> str:
        return "streamRawPredict" if stream else "rawPredict"

    def request_body(self, request: ProviderRequest, model: str) -> dict[str, Any]:
        version = request.target.option("anthropic_version") or request.body.get("anthropic_version")
        return chat_to_messages(
            request.body,
            anthropic_version=str(version or VERTEX_ANTHROPIC_VERSION),
            stream=True if request.stream else None,
            anthropic_beta=_beta_flags(request),
        )

    def response(self, data: Mapping[str, Any], request: ProviderRequest) -> dict[str, Any]:
        return messages_to_chat(data, provider=PROVIDER, model=str(request.body.get("model")),
                                created=int(self._clock()), strict=strict_compliance(request))

    def stream(self, chunks: AsyncIterator[bytes], request: ProviderRequest) -> AsyncIterator[bytes]:
        translator = MessagesStreamTranslator(provider=PROVIDER, model=str(request.body.get("model")),
                                              created=int(self._clock()), strict=strict_compliance(request))
        return translate_messages_stream(chunks, translator)
