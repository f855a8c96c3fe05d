"""Golden translations of the shared OpenAI ↔ Anthropic Messages module, with each host's envelope as parameters
(direct API: model and stream in the body; Bedrock: anthropic_version, no stream; Vertex is covered by the Vertex
goldens). Streams are replayed frame by frame and cut into 5-byte pieces.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.providers.anthropic_messages.request import chat_to_messages
from core.providers.anthropic_messages.response import messages_to_chat
from core.providers.anthropic_messages.stream import MessagesStreamTranslator, translate_messages_stream
from tests.providers.anthropic_messages.golden_io import (
    CREATED,
    case_id,
    check_golden,
    golden_cases,
    load_case,
    run_stream,
)


@pytest.mark.parametrize("path", golden_cases("anthropic/request"), ids=case_id)
def test_request(path: Path) -> None:
    case = load_case(path)
    check_golden(path, case, chat_to_messages(case["openai"], **case["params"]))


@pytest.mark.parametrize("path", golden_cases("anthropic/response"), ids=case_id)
def test_response(path: Path) -> None:
    case = load_case(path)
    params = case["params"]
    response = messages_to_chat(case["vendor"], provider="anthropic", model=params["model"], created=CREATED,
                                strict=params.get("strict", True))
    check_golden(path, case, response)


@pytest.mark.parametrize("split", [None, 5], ids=["frames", "5-byte-pieces"])
@pytest.mark.parametrize("path", golden_cases("anthropic/stream"), ids=case_id)
async def test_stream(path: Path, split: int | None) -> None:
    case = load_case(path)
    params = case["params"]

    def translate(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        translator = MessagesStreamTranslator(provider="anthropic", model=params["model"], created=CREATED,
                                              strict=params.get("strict", True))
        return translate_messages_stream(chunks, translator)

    check_golden(path, case, await run_stream(case["transcript"], translate, split=split))
