"""Golden translations (tests/providers/golden/bedrock/): an OpenAI request in → the exact Converse body out;
Converse responses and event-stream transcripts in → the exact OpenAI response and chunks out; embeddings requests
in → the exact InvokeModel bodies, and their answers → the exact OpenAI embeddings response. Ids and timestamps are
fixed by the files.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from core.errors import SkyrelayError
from core.providers.bedrock.converse_request import converse_body
from core.providers.bedrock.converse_response import chat_completion
from core.providers.bedrock.embeddings import InvokeAnswer, embedding_job
from core.providers.bedrock.images import InlineMedia
from core.providers.bedrock.stream import ConverseStreamTranslator, openai_sse
from tests.fakes.bedrock_upstream import frames_for, validate_input

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "bedrock"


def _load(prefix: str) -> list[tuple[str, dict[str, Any]]]:
    files = sorted(GOLDEN.glob(f"{prefix}_*.json"))
    assert files, f"no {prefix} golden files"
    return [(path.stem, json.loads(path.read_text())) for path in files]


def _cases(prefix: str) -> list[Any]:
    return [pytest.param(case, data, id=f"{stem}[{i}]")
            for stem, data in _load(prefix) for i, case in enumerate(data.get("cases", [data]))]


@pytest.mark.parametrize(("case", "data"), _cases("request"))
def test_openai_request_becomes_the_exact_converse_body(case: dict[str, Any], data: dict[str, Any]) -> None:
    fetched = {url: InlineMedia(**media) for url, media in case.get("fetched", {}).items()}

    body = converse_body(case["openai"], stream=case["stream"], fetched=fetched)

    assert body == case["converse"], case["name"]
    operation = "ConverseStream" if case["stream"] else "Converse"
    assert validate_input(operation, {**body, "modelId": case["openai"]["model"]}) is None


@pytest.mark.parametrize(("case", "data"), _cases("response"))
def test_converse_response_becomes_the_exact_openai_completion(case: dict[str, Any], data: dict[str, Any]) -> None:
    completion = chat_completion(case["converse"], model=case["model"], response_id=data["id"],
                                 created=data["created"])

    assert completion == case["openai"], case["name"]


async def _pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _decode_sse(events: list[bytes]) -> list[Any]:
    out: list[Any] = []
    for event in events:
        assert event.startswith(b"data: ") and event.endswith(b"\n\n")
        payload = event[len(b"data: ") : -2]
        out.append("[DONE]" if payload == b"[DONE]" else json.loads(payload))
    return out


@pytest.mark.parametrize("piece_size", [1, 11, 1 << 20], ids=["byte-by-byte", "11-byte-pieces", "whole"])
@pytest.mark.parametrize(("case", "data"), _cases("stream"))
async def test_event_stream_transcript_becomes_the_exact_openai_chunks(
    case: dict[str, Any], data: dict[str, Any], piece_size: int
) -> None:
    translator = ConverseStreamTranslator(model=case["model"], response_id=data["id"], created=data["created"],
                                          include_usage=case["include_usage"])
    raw = b"".join(frames_for(case["events"]))
    emitted: list[bytes] = []
    error: SkyrelayError | None = None
    try:
        async for event in openai_sse(_pieces(raw, piece_size), translator):
            emitted.append(event)
    except SkyrelayError as exc:
        error = exc

    assert _decode_sse(emitted) == case["chunks"], case["name"]
    expected_error = case.get("error")
    if expected_error is None:
        assert error is None
        assert case["chunks"][-1] == "[DONE]"
    else:
        assert error is not None, "an exception or truncated stream must end in an error, not a normal finish"
        assert (error.status, error.code, error.message, error.retryable) == (
            expected_error["status"], expected_error["code"], expected_error["message"], expected_error["retryable"])
        assert error.body()["provider"] == "bedrock"


@pytest.mark.parametrize(("case", "data"), _cases("embeddings"))
def test_embeddings_request_and_answers_translate_exactly(case: dict[str, Any], data: dict[str, Any]) -> None:
    job = embedding_job(case["openai"])

    assert job.bodies == case["invoke"], case["name"]
    answers = [InvokeAnswer(a["body"], a.get("input_tokens")) for a in case["answers"]]
    assert job.combine(answers) == case["response"]
