"""Response translation: Azure OpenAI answers are OpenAI's format plus content-filter annotations; this makes the
few places where Azure departs from it OpenAI-shaped again, and leaves everything else (``prompt_filter_results``,
``content_filter_results``, usage details) exactly as Azure sent it.

- A choice whose ``content_filter_results`` say ``filtered: true`` finishes with ``content_filter`` — also when
  Azure sends the verdict as a bare annotation (its asynchronous filter mode) rather than as the finish reason.
- A chat choice always has a ``message`` (buffered) or a ``delta`` (streamed): Azure's annotation chunks carry
  neither, which breaks the openai SDK's stream helpers and most OpenAI clients.
- Annotation-only chunks have empty ``id``/``object``/``model`` and ``created: 0``; they get the stream's own
  values (the last real chunk's), so every chunk of one stream names the same completion.
"""

from __future__ import annotations

from typing import Any

import orjson

from core.providers.base import Operation

CONTENT_FILTER = "content_filter"

_CHUNK_OBJECT = {Operation.CHAT: "chat.completion.chunk", Operation.COMPLETION: "text_completion"}


def filtered(choice: dict[str, Any]) -> bool:
    """Whether any content-filter category blocked this choice's output."""
    results = choice.get("content_filter_results")
    if not isinstance(results, dict):
        return False
    return any(isinstance(r, dict) and r.get("filtered") is True for r in results.values())


def _normalize_choice(choice: dict[str, Any], operation: Operation, *, streamed: bool) -> bool:
    changed = False
    if filtered(choice) and choice.get("finish_reason") != CONTENT_FILTER:
        choice["finish_reason"] = CONTENT_FILTER
        changed = True
    if operation is Operation.CHAT:
        key = "delta" if streamed else "message"
        if not isinstance(choice.get(key), dict):
            choice[key] = {} if streamed else {"role": "assistant", "content": None}
            changed = True
    elif operation is Operation.COMPLETION and "text" not in choice:
        choice["text"] = ""
        changed = True
    return changed


def normalize_completion(operation: Operation, body: bytes) -> bytes:
    """A buffered chat/completions answer; bytes are returned untouched when nothing needed changing."""
    if operation not in (Operation.CHAT, Operation.COMPLETION):
        return body
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        return body
    changed = False
    for choice in data["choices"]:
        if isinstance(choice, dict):
            changed = _normalize_choice(choice, operation, streamed=False) or changed
    return orjson.dumps(data) if changed else body


class ChunkNormalizer:
    """Per-stream state for chunk normalization: the identity of the last real chunk."""

    __slots__ = ("_identity", "_object", "_operation")

    def __init__(self, operation: Operation) -> None:
        self._operation = operation
        self._object = _CHUNK_OBJECT.get(operation, "")
        self._identity: dict[str, Any] = {}

    def normalize(self, chunk: dict[str, Any]) -> dict[str, Any]:
        if chunk.get("id"):
            self._identity = {k: chunk[k] for k in ("id", "created", "model") if chunk.get(k)}
        else:
            for key, value in self._identity.items():
                if not chunk.get(key):
                    chunk[key] = value
        if self._object and not chunk.get("object"):
            chunk["object"] = self._object
        choices = chunk.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if isinstance(choice, dict):
                    _normalize_choice(choice, self._operation, streamed=True)
        return chunk
