"""Golden-file plumbing shared by the Anthropic Messages and Vertex translation tests.

A golden file is one JSON case: its inputs (an OpenAI request, a vendor response or a raw stream transcript) and the
exact ``expected`` output, with ids and timestamps made deterministic. ``SKYRELAY_UPDATE_GOLDEN=1`` rewrites the
``expected`` parts from the current code instead of comparing — review the diff before committing it.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson

from core.errors import SkyrelayError

GOLDEN_ROOT = Path(__file__).resolve().parents[1] / "golden"
#: Every golden output is stamped with this ``created`` time.
CREATED = 1767225600
UPDATE = os.environ.get("SKYRELAY_UPDATE_GOLDEN") == "1"


def golden_cases(subdir: str) -> list[Path]:
    paths = sorted((GOLDEN_ROOT / subdir).glob("*.json"))
    assert paths, f"no golden files under {GOLDEN_ROOT / subdir}"
    return paths


def case_id(path: Path) -> str:
    return path.stem


def load_case(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def check_golden(path: Path, case: dict[str, Any], actual: Any, key: str = "expected") -> None:
    """``actual`` must equal the file's ``expected`` (after a JSON round trip); or rewrite it when updating."""
    actual = json.loads(orjson.dumps(actual))
    if UPDATE:
        case[key] = actual
        path.write_text(json.dumps(case, indent=2, ensure_ascii=False) + "\n")
        return
    assert actual == case[key]


def counter_ids(prefix: str = "call_") -> Callable[[], str]:
    """Deterministic tool-call ids: call_0001, call_0002, ..."""
    numbers = itertools.count(1)
    return lambda: f"{prefix}{next(numbers):04d}"


async def _pieces(pieces: list[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


async def run_stream(transcript: list[str], translate: Callable[[AsyncIterator[bytes]], AsyncIterator[bytes]],
                     *, split: int | None = None) -> dict[str, Any]:
    """Feed a stream transcript (frame by frame, or cut every ``split`` bytes) through a translator.

    Returns ``{"chunks": [...]}`` — each OpenAI event's JSON, or ``"[DONE]"`` — plus ``"error"`` (the body the
    client would get as its final SSE event) when the translator raised.
    """
    frames = [frame.encode() for frame in transcript]
    if split:
        raw = b"".join(frames)
        frames = [raw[i : i + split] for i in range(0, len(raw), split)]
    chunks: list[Any] = []
    try:
        async for event in translate(_pieces(frames)):
            assert event.startswith(b"data: ") and event.endswith(b"\n\n"), event
            payload = event[len(b"data: ") : -2]
            chunks.append("[DONE]" if payload == b"[DONE]" else orjson.loads(payload))
    except SkyrelayError as error:
        return {"chunks": chunks, "error": error.body()}
    return {"chunks": chunks}
