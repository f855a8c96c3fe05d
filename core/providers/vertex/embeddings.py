"""OpenAI embeddings ↔ Vertex text-embedding ``:predict`` (``text-embedding-005``, ``gemini-embedding-001`` ...).

Each input string is one instance (with the Portkey ``task_type`` body field, e.g. ``RETRIEVAL_QUERY``);
``dimensions`` becomes ``parameters.outputDimensionality``; a ``parameters`` object in the body is passed through.
Usage is the sum of the instances' token counts. ``encoding_format: base64`` returns little-endian float32 bytes, as
OpenAI does.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping
from typing import Any

from core.errors import InvalidRequestError


def embedding_request(body: Mapping[str, Any]) -> dict[str, Any]:
    raw = body.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not all(isinstance(item, str) for item in inputs):
        raise InvalidRequestError("vertex-ai embeddings take 'input' as a string or a list of strings", param="input")
    task_type = body.get("task_type")
    instances = []
    for text in inputs:
        instance: dict[str, Any] = {"content": text}
        if isinstance(task_type, str) and task_type:
            instance["task_type"] = task_type
        instances.append(instance)
    out: dict[str, Any] = {"instances": instances}
    parameters = dict(body["parameters"]) if isinstance(body.get("parameters"), dict) else {}
    if isinstance(body.get("dimensions"), int):
        parameters["outputDimensionality"] = body["dimensions"]
    if parameters:
        out["parameters"] = parameters
    return out


def embedding_response(data: Mapping[str, Any], *, model: str, encoding_format: str | None) -> dict[str, Any]:
    items = []
    tokens = 0
    for index, prediction in enumerate(data.get("predictions") or []):
        embeddings = prediction.get("embeddings") or {}
        values = [float(v) for v in embeddings.get("values") or []]
        tokens += int((embeddings.get("statistics") or {}).get("token_count") or 0)
        vector: Any = values
        if encoding_format == "base64":
            vector = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
        items.append({"object": "embedding", "index": index, "embedding": vector})
    return {"object": "list", "data": items, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
