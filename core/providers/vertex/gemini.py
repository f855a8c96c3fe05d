"""Gemini on Vertex: the ``google`` publisher's endpoints and translations, as the provider's chat family."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from core.providers.base import ProviderRequest
from core.providers.vertex.gemini_request import chat_to_gemini
from core.providers.vertex.gemini_response import gemini_to_chat, new_call_id
from core.providers.vertex.gemini_stream import GeminiStreamTranslator, translate_gemini_stream


class GeminiChat:
    """``clock`` and ``new_id`` (tool-call ids) are injectable so golden tests get deterministic output."""

    publisher = "google"

    def __init__(self, *, clock: Callable[[], float] = time.time, new_id: Callable[[], str] = new_call_id) -> None:
        self._clock = clock
        self._new_id = new_id

    def method(self, stream: bool) -> str:
        return "streamGenerateContent?alt=sse" if stream else "generateContent"

    def request_body(self, request: ProviderRequest, model: str) -> dict[str, Any]:
        return chat_to_gemini(request.body)

    def response(self, data: Mapping[str, Any], request: ProviderRequest) -> dict[str, Any]:
        return gemini_to_chat(data, model=str(request.body.get("model")), created=int(self._clock()),
                              new_id=self._new_id)

    def stream(self, chunks: AsyncIterator[bytes], request: ProviderRequest) -> AsyncIterator[bytes]:
        translator = GeminiStreamTranslator(model=str(request.body.get("model")), created=int(self._clock()),
                                            new_id=self._new_id)
        return translate_gemini_stream(chunks, translator)
