"""Golden translations for azure-openai (tests/providers/golden/azure_openai/):

- requests/: an OpenAI request and a target → the exact method, URL, headers and body sent to Azure;
- responses/: an Azure answer → the exact OpenAI answer the client gets;
- streams/: an Azure SSE transcript → the exact OpenAI chunks, whatever the upstream's read boundaries.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from core.providers.base import Operation
from tests.providers.azure_openai.support import (
    OPERATIONS,
    CannedResponse,
    RecordingUpstream,
    collect,
    events,
    make_provider,
    make_request,
    make_target,
)

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "azure_openai"
ANY_TARGET = {"deployment_id": "gpt-4o", "api_version": "2024-10-21"}
CLIENT_BODY: dict[Operation, dict[str, Any]] = {
    Operation.CHAT: {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
    Operation.COMPLETION: {"model": "gpt-35-turbo-instruct", "prompt": "hi"},
    Operation.EMBEDDING: {"model": "text-embedding-3-small", "input": "hi"},
}


def cases(kind: str) -> list[Any]:
    files = sorted((GOLDEN / kind).glob("*.json"))
    assert files, f"no golden files under {GOLDEN / kind}"
    return [pytest.param(json.loads(f.read_text()), id=f.stem) for f in files]


@pytest.mark.parametrize("case", cases("requests"))
async def test_request_translation(case: dict[str, Any]) -> None:
    upstream = RecordingUpstream()
    operation = OPERATIONS[case["operation"]]
    spec = case["target"]
    target = make_target(spec.get("options"), api_key=spec.get("api_key"), custom_host=spec.get("custom_host"),
                         forward_headers=tuple(spec.get("forward_headers", ())))
    request = make_request(target, case["request"], operation=operation, query=case["query"],
                           client_headers=case["client_headers"])

    await getattr(make_provider(upstream), operation.method)(request)

    [sent] = upstream.sent
    expected = case["expected"]
    assert (sent.method, sent.url) == (expected["method"], expected["url"])
    assert sent.headers == expected["headers"]
    assert sent.json() == expected["body"]


@pytest.mark.parametrize("case", cases("responses"))
async def test_response_translation(case: dict[str, Any]) -> None:
    operation = OPERATIONS[case["operation"]]
    raw = orjson.dumps(case["azure"])
    provider = make_provider(RecordingUpstream(CannedResponse(body=raw)))
    request = make_request(make_target(ANY_TARGET, api_key="k", custom_host="http://127.0.0.1:1"),
                           CLIENT_BODY[operation], operation=operation)

    result = await getattr(provider, operation.method)(request)

    assert result.status == 200
    assert result.body is not None
    assert orjson.loads(result.body) == case["expected"]
    if case["azure"] == case["expected"]:
        assert result.body == raw, "an answer that needs no change is relayed byte for byte"


def transcript(case: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + (e.encode() if isinstance(e, str) else orjson.dumps(e)) + b"\n\n"
                    for e in case["azure"])


@pytest.mark.parametrize("piece", [None, 1, 7, 64])
@pytest.mark.parametrize("case", cases("streams"))
async def test_stream_translation(case: dict[str, Any], piece: int | None) -> None:
    operation = OPERATIONS[case["operation"]]
    data = transcript(case)
    parts = [data] if piece is None else [data[i:i + piece] for i in range(0, len(data), piece)]
    upstream = RecordingUpstream(CannedResponse(parts=parts, headers=[("content-type", "text/event-stream")]))
    request = make_request(make_target(ANY_TARGET, api_key="k", custom_host="http://127.0.0.1:1"),
                           {**CLIENT_BODY[operation], "stream": True}, operation=operation)

    result = await getattr(make_provider(upstream), operation.method)(request)

    assert result.media_type == "text/event-stream"
    chunks = await collect(result.chunks)
    assert events(chunks) == case["expected"]
    assert all(c.startswith(b"data: ") and c.endswith(b"\n\n") for c in chunks), "one whole event per chunk"
