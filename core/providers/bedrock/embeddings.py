"""``/v1/embeddings`` on Bedrock through InvokeModel: Titan Text Embeddings (v2, v1) and Cohere Embed (v3, v4).

Titan embeds one text per call, so a list input becomes one InvokeModel call per text (run concurrently by the
provider); Cohere takes up to 96 texts per call. ``dimensions`` maps to Titan v2's ``dimensions`` and Cohere v4's
``output_dimension``. Both are asked for float vectors; ``encoding_format: base64`` is produced here the way OpenAI
does it (little-endian float32, base64) — Titan's own "binary" type is a different, 1-bit encoding.
Usage: Titan reports ``inputTextTokenCount``; Cohere only the ``X-Amzn-Bedrock-Input-Token-Count`` header.
"""

from __future__ import annotations

import base64
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.errors import InvalidRequestError

#: Region / geography prefixes of cross-region inference profile ids.
_PROFILE_PREFIX = re.compile(r"^(us|eu|apac|au|ca|jp|global|us-gov)\.")
COHERE_BATCH = 96
TOKEN_COUNT_HEADER = "x-amzn-bedrock-input-token-count"


@dataclass(frozen=True, slots=True)
class InvokeAnswer:
    """One InvokeModel answer: its JSON body and the input token count header, if any."""

    body: Mapping[str, Any]
    input_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class EmbeddingJob:
    """The InvokeModel calls that serve one embeddings request, and how to combine their answers."""

    model: str
    family: str
    bodies: list[dict[str, Any]]
    encoding_format: str

    def combine(self, answers: Sequence[InvokeAnswer]) -> dict[str, Any]:
        vectors: list[list[float]] = []
        tokens = 0
        for answer in answers:
            if self.family == "cohere":
                vectors.extend(_cohere_vectors(answer.body))
                tokens += answer.input_tokens or 0
            else:
                vectors.append(_titan_vector(answer.body))
                count = answer.body.get("inputTextTokenCount")
                tokens += int(count) if isinstance(count, int) else (answer.input_tokens or 0)
        return {
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": self._encode(vector)}
                     for i, vector in enumerate(vectors)],
            "model": self.model,
            "provider": "bedrock",
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def _encode(self, vector: list[float]) -> list[float] | str:
        if self.encoding_format == "base64":
            return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
        return vector


def model_family(model: str) -> str:
    base = _PROFILE_PREFIX.sub("", model)
    if base.startswith("amazon.titan-embed-text-v2"):
        return "titan-v2"
    if base.startswith(("amazon.titan-embed-text-v1", "amazon.titan-embed-g1-text")):
        return "titan-v1"
    if base.startswith("cohere.embed-"):
        return "cohere"
    raise InvalidRequestError(
        f"bedrock embeddings serve Titan Text Embeddings (amazon.titan-embed-text-*) and Cohere Embed "
        f"(cohere.embed-*) models; {model!r} is neither", param="model")


def _texts(value: Any) -> list[str]:
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise InvalidRequestError("bedrock embeddings take 'input' as a string or a list of strings (not tokens)",
                                  param="input")
    if any(not t.strip() for t in texts):
        raise InvalidRequestError("bedrock cannot embed an empty string", param="input")
    return texts


def embedding_job(body: Mapping[str, Any]) -> EmbeddingJob:
    model = str(body["model"])
    family = model_family(model)
    texts = _texts(body.get("input"))
    dimensions = body.get("dimensions")
    encoding = str(body.get("encoding_format") or "float")
    if family == "cohere":
        extra: dict[str, Any] = {"input_type": body.get("input_type") or "search_document",
                                 "embedding_types": ["float"]}
        if body.get("truncate") is not None:
            extra["truncate"] = body["truncate"]
        if dimensions is not None:
            extra["output_dimension"] = dimensions
        bodies = [{"texts": texts[i : i + COHERE_BATCH], **extra} for i in range(0, len(texts), COHERE_BATCH)]
        return EmbeddingJob(model, family, bodies, encoding)
    if dimensions is not None and family == "titan-v1":
        raise InvalidRequestError(f"{model} has a fixed size; 'dimensions' needs Titan Text Embeddings v2",
                                  param="dimensions")
    titan: dict[str, Any] = {}
    if family == "titan-v2":
        if dimensions is not None:
            titan["dimensions"] = dimensions
        titan["normalize"] = bool(body.get("normalize", True))
        titan["embeddingTypes"] = ["float"]
    return EmbeddingJob(model, family, [{"inputText": text, **titan} for text in texts], encoding)


def _titan_vector(body: Mapping[str, Any]) -> list[float]:
    by_type = body.get("embeddingsByType")
    if isinstance(by_type, dict) and isinstance(by_type.get("float"), list):
        return list(by_type["float"])
    vector = body.get("embedding")
    if not isinstance(vector, list):
        raise ValueError("Titan answer without an embedding")
    return list(vector)


def _cohere_vectors(body: Mapping[str, Any]) -> list[list[float]]:
    embeddings = body.get("embeddings")
    if isinstance(embeddings, dict):
        embeddings = embeddings.get("float")
    if not isinstance(embeddings, list):
        raise ValueError("Cohere answer without float embeddings")
    return [list(vector) for vector in embeddings]
