from __future__ import annotations

from core.api.sse import DONE, SseParser, encode_data, encode_event
from core.api.stream_assembly import assemble_stream


def events(chunks: list[bytes]) -> list[tuple[str | None, str]]:
    parser = SseParser()
    out = [(e.event, e.data) for chunk in chunks for e in parser.feed(chunk)]
    return out + [(e.event, e.data) for e in parser.close()]


def test_parser_handles_arbitrary_chunk_boundaries() -> None:
    stream = b'event: message_start\ndata: {"a":1}\n\ndata: {"b":\r\n\r\ndata: [DONE]\n\n'
    expected = [("message_start", '{"a":1}'), (None, '{"b":'), (None, "[DONE]")]
    assert events([stream]) == expected
    assert events([stream[i : i + 1] for i in range(len(stream))]) == expected


def test_parser_joins_multi_line_data_and_skips_comments() -> None:
    assert events([b": keep-alive\n\ndata: one\ndata: two\n\n"]) == [(None, "one\ntwo")]


def test_parser_flushes_an_unterminated_last_event() -> None:
    assert events([b"data: tail"]) == [(None, "tail")]


def test_encoders() -> None:
    assert encode_data({"x": 1}) == b'data: {"x":1}\n\n'
    assert encode_event("ping", {}) == b"event: ping\ndata: {}\n\n"
    assert DONE == b"data: [DONE]\n\n"


def test_assembles_text_tool_calls_and_usage() -> None:
    chunks = [
        b'data: {"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,'
        b'"delta":{"role":"assistant","content":"Hel"}}]}\n\n',
        b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"lo"}}]}\n\n'
        b'data: {"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function",'
        b'"function":{"name":"get","arguments":"{\\"a\\""}}]}}]}\n\n',
        b'data: {"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]},'
        b'"finish_reason":"tool_calls"}]}\n\n',
        b'data: {"id":"c1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}\n\n',
        b"data: [DONE]\n\n",
    ]
    result = assemble_stream(chunks)
    assert result == {
        "id": "c1", "model": "m", "object": "chat.completion",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Hello",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get", "arguments": '{"a":1}'}}],
        }}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


def test_assembles_legacy_completions_and_keeps_errors() -> None:
    head = b'data: {"id":"x","object":"text_completion","choices":[{"index":0,'
    chunks = [head + b'"text":"a","finish_reason":null}]}\n\n', head + b'"text":"b","finish_reason":"stop"}]}\n\n']
    assert assemble_stream(chunks)["choices"] == [{"index": 0, "text": "ab", "finish_reason": "stop"}]
    assert assemble_stream([b'data: {"error":{"message":"boom"}}\n\n']) == {"error": {"message": "boom"}}
    assert assemble_stream([b"not sse at all"]) is None
