"""Golden translations both ways for Gemini and Claude on Vertex, and for text embeddings.

Requests: an OpenAI body in, the exact Vertex body out — which must also pass the strict wire validators the fake
Vertex uses (google-genai's own types for Gemini). Responses and stream transcripts: the vendor's bytes in, the exact
OpenAI response or chunk sequence out; every transcript is also replayed cut into 7-byte pieces, which must not
change a single chunk.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from core.config.target import Target
from core.providers.base import Operation, ProviderRequest
from core.providers.vertex.claude import ClaudeOnVertex
from core.providers.vertex.embeddings import embedding_request, embedding_response
from core.providers.vertex.gemini import GeminiChat
from tests.fakes.vertex_wire import validate_claude_request, validate_gemini_request, validate_predict_request
from tests.providers.anthropic_messages.golden_io import (
    CREATED,
    case_id,
    check_golden,
    counter_ids,
    golden_cases,
    load_case,
    run_stream,
)


def _request(case: dict[str, Any], body_key: str = "openai") -> ProviderRequest:
    options = {"vertex_region": "us-central1", "vertex_project_id": "my-project", **case.get("target_options", {})}
    return ProviderRequest(Operation.CHAT, case[body_key], Target(provider="vertex-ai", options=options),
                           case.get("client_headers", {}), "trace-golden")


def _gemini() -> GeminiChat:
    return GeminiChat(clock=lambda: CREATED, new_id=counter_ids())


def _claude() -> ClaudeOnVertex:
    return ClaudeOnVertex(clock=lambda: CREATED)


@pytest.mark.parametrize("path", golden_cases("vertex/gemini_request"), ids=case_id)
def test_gemini_request(path: Path) -> None:
    case = load_case(path)
    body = _gemini().request_body(_request(case), case["openai"]["model"])

    check_golden(path, case, body)
    validate_gemini_request(body)


@pytest.mark.parametrize("path", golden_cases("vertex/gemini_response"), ids=case_id)
def test_gemini_response(path: Path) -> None:
    case = load_case(path)
    check_golden(path, case, _gemini().response(case["vendor"], _request(case)))


@pytest.mark.parametrize("split", [None, 7], ids=["frames", "7-byte-pieces"])
@pytest.mark.parametrize("path", golden_cases("vertex/gemini_stream"), ids=case_id)
async def test_gemini_stream(path: Path, split: int | None) -> None:
    case = load_case(path)
    family = _gemini()

    def translate(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        return family.stream(chunks, _request(case))

    result = await run_stream(case["transcript"], translate, split=split)
    check_golden(path, case, result)


@pytest.mark.parametrize("path", golden_cases("vertex/claude_request"), ids=case_id)
def test_claude_request(path: Path) -> None:
    case = load_case(path)
    request = _request(case)
    body = _claude().request_body(request, case["openai"]["model"])

    check_golden(path, case, body)
    validate_claude_request(body, stream=request.stream)


@pytest.mark.parametrize("path", golden_cases("vertex/claude_response"), ids=case_id)
def test_claude_response(path: Path) -> None:
    case = load_case(path)
    check_golden(path, case, _claude().response(case["vendor"], _request(case)))


@pytest.mark.parametrize("split", [None, 7], ids=["frames", "7-byte-pieces"])
@pytest.mark.parametrize("path", golden_cases("vertex/claude_stream"), ids=case_id)
async def test_claude_stream(path: Path, split: int | None) -> None:
    case = load_case(path)
    family = _claude()

    def translate(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        return family.stream(chunks, _request(case))

    check_golden(path, case, await run_stream(case["transcript"], translate, split=split))


@pytest.mark.parametrize("path", golden_cases("vertex/embeddings"), ids=case_id)
def test_embeddings(path: Path) -> None:
    case = load_case(path)
    body = embedding_request(case["openai"])
    check_golden(path, case, body, key="expected_request")
    validate_predict_request(body)
    response = embedding_response(case["vendor"], model=case["openai"]["model"],
                                  encoding_format=case["openai"].get("encoding_format"))
    check_golden(path, case, response)
