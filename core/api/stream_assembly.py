"""Rebuilds one ``chat.completion`` (or ``text_completion``) from the SSE chunks of a stream.

The log record of a streamed request holds the assembled answer, not hundreds of chunks; the response cache
stores the same thing and replays it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from core.api.sse import SseParser


def assemble_stream(raw_chunks: Iterable[bytes]) -> dict[str, Any] | None:
    """The completion the chunks describe, or ``None`` when they hold no OpenAI chunk at all."""
    parser = SseParser()
    assembler = ChunkAssembler()
    for raw in raw_chunks:
        for event in parser.feed(raw):
            assembler.add_data(event.data)
    for event in parser.close():
        assembler.add_data(event.data)
    return assembler.result()


class ChunkAssembler:
    def __init__(self) -> None:
        self._head: dict[str, Any] = {}
        self._choices: dict[int, dict[str, Any]] = {}
        self._usage: Any = None
        self._error: Any = None
        self._seen = False

    def add_data(self, data: str) -> None:
        if not data or data == "[DONE]":
            return
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(chunk, dict):
            return
        if "error" in chunk:
            self._error = chunk["error"]
            return
        self._seen = True
        for key in ("id", "model", "created", "system_fingerprint", "provider"):
            if key in chunk and key not in self._head:
                self._head[key] = chunk[key]
        if chunk.get("object") and "object" not in self._head:
            self._head["object"] = str(chunk["object"]).removesuffix(".chunk")
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            self._add_choice(choice)

    def _add_choice(self, choice: dict[str, Any]) -> None:
        index = choice.get("index", 0)
        slot = self._choices.setdefault(index, {"index": index, "content": [], "tool_calls": {}, "finish": None})
        if choice.get("finish_reason"):
            slot["finish"] = choice["finish_reason"]
        if "text" in choice and isinstance(choice["text"], str):  # legacy completions
            slot["content"].append(choice["text"])
            slot["legacy"] = True
        delta = choice.get("delta") or {}
        if isinstance(delta.get("content"), str):
            slot["content"].append(delta["content"])
        if delta.get("role"):
            slot["role"] = delta["role"]
        for call in delta.get("tool_calls") or []:
            calls = slot["tool_calls"]
            entry = calls.setdefault(call.get("index", len(calls)), {"id": None, "name": "", "arguments": []})
            entry["id"] = call.get("id") or entry["id"]
            function = call.get("function") or {}
            if function.get("name"):
                entry["name"] = function["name"]
            if function.get("arguments"):
                entry["arguments"].append(function["arguments"])

    def result(self) -> dict[str, Any] | None:
        if not self._seen:
            return {"error": self._error} if self._error is not None else None
        choices = []
        legacy = False
        for index in sorted(self._choices):
            slot = self._choices[index]
            text = "".join(slot["content"])
            if slot.get("legacy"):
                legacy = True
                choices.append({"index": index, "text": text, "finish_reason": slot["finish"]})
                continue
            message: dict[str, Any] = {"role": slot.get("role", "assistant"), "content": text or None}
            if slot["tool_calls"]:
                message["tool_calls"] = [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {"name": c["name"], "arguments": "".join(c["arguments"])},
                    }
                    for _, c in sorted(slot["tool_calls"].items())
                ]
            choices.append({"index": index, "message": message, "finish_reason": slot["finish"]})
        out: dict[str, Any] = {**self._head, "choices": choices}
        out.setdefault("object", "text_completion" if legacy else "chat.completion")
        if self._usage is not None:
            out["usage"] = self._usage
        if self._error is not None:
            out["error"] = self._error
        return out
