"""A fake Bedrock runtime on loopback that holds callers to the real service's rules.

1. Every request's SigV4 signature is recomputed with botocore for the credentials the fake knows (403 with
   ``x-amzn-ErrorType`` and ``{"message": ...}`` like Bedrock when it does not match, the key is unknown, or the
   session token is wrong or expired).
2. Converse / ConverseStream bodies are validated against botocore's bedrock-runtime service model
   (``ParamValidator`` on the operation's input shape); a violation is a 400 ``ValidationException``.
3. Answers: Converse JSON, ConverseStream as real ``application/vnd.amazon.eventstream`` frames (built by
   :func:`encode_frame` from the documented prelude / headers / CRC32 layout, each payload padded with Bedrock's
   ``p`` field), InvokeModel embeddings for Titan and Cohere, and scripted errors and exception frames.
"""

from __future__ import annotations

import asyncio
import binascii
import hmac
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials
from botocore.loaders import Loader
from botocore.model import ServiceModel
from botocore.validate import ParamValidator

from tests.fakes.server import ServedFake, ThreadedServer

EVENT_STREAM = "application/vnd.amazon.eventstream"
_MODEL = ServiceModel(Loader().load_service_model("bedrock-runtime", "service-2"), "bedrock-runtime")


# --- event-stream frames --------------------------------------------------------------------------------------
def encode_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (total length, headers length, CRC32), string headers, payload, CRC32."""
    encoded = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        encoded += struct.pack("!B", len(raw_name)) + raw_name + struct.pack("!BH", 7, len(raw_value)) + raw_value
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack("!II", total, len(encoded))
    prelude += struct.pack("!I", binascii.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack("!I", binascii.crc32(message))


def event_frame(event_type: str, payload: dict[str, Any]) -> bytes:
    body = orjson.dumps({**payload, "p": "abcdefghijklmnopqrstuvwxyzABCDEF"[: 4 + len(event_type) % 20]})
    return encode_frame({":event-type": event_type, ":content-type": "application/json", ":message-type": "event"},
                        body)


def exception_frame(exception_type: str, message: str) -> bytes:
    return encode_frame({":exception-type": exception_type, ":content-type": "application/json",
                         ":message-type": "exception"}, orjson.dumps({"message": message}))


def frames_for(events: list[dict[str, Any]]) -> list[bytes]:
    """Transcript entries (``{"event": type, "payload": {...}}`` or ``{"exception": type, "message": ...}``)."""
    out = []
    for entry in events:
        if "exception" in entry:
            out.append(exception_frame(entry["exception"], entry["message"]))
        else:
            out.append(event_frame(entry["event"], entry["payload"]))
    return out


def text_stream_events(words: list[str], *, stop: str = "end_turn", usage: dict[str, int] | None = None
                       ) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [{"event": "messageStart", "payload": {"role": "assistant"}}]
    events += [{"event": "contentBlockDelta", "payload": {"contentBlockIndex": 0, "delta": {"text": w}}}
               for w in words]
    events += [
        {"event": "contentBlockStop", "payload": {"contentBlockIndex": 0}},
        {"event": "messageStop", "payload": {"stopReason": stop}},
        {"event": "metadata", "payload": {"usage": usage or {"inputTokens": 12, "outputTokens": len(words),
                                                             "totalTokens": 12 + len(words)},
                                          "metrics": {"latencyMs": 42}}},
    ]
    return events


def tool_stream_events(tool_id: str, name: str, argument_parts: list[str]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [
        {"event": "messageStart", "payload": {"role": "assistant"}},
        {"event": "contentBlockDelta", "payload": {"contentBlockIndex": 0, "delta": {"text": "Let me check."}}},
        {"event": "contentBlockStop", "payload": {"contentBlockIndex": 0}},
        {"event": "contentBlockStart",
         "payload": {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": tool_id, "name": name}}}},
    ]
    events += [{"event": "contentBlockDelta", "payload": {"contentBlockIndex": 1, "delta": {"toolUse": {"input": p}}}}
               for p in argument_parts]
    events += [
        {"event": "contentBlockStop", "payload": {"contentBlockIndex": 1}},
        {"event": "messageStop", "payload": {"stopReason": "tool_use"}},
        {"event": "metadata", "payload": {"usage": {"inputTokens": 30, "outputTokens": 20, "totalTokens": 50},
                                          "metrics": {"latencyMs": 99}}},
    ]
    return events


def converse_text(text: str, *, stop: str = "end_turn", usage: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": stop,
        "usage": usage or {"inputTokens": 12, "outputTokens": 6, "totalTokens": 18},
        "metrics": {"latencyMs": 42},
    }


def converse_tool_call(tool_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": [
            {"toolUse": {"toolUseId": tool_id, "name": name, "input": arguments}}]}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 30, "outputTokens": 20, "totalTokens": 50},
        "metrics": {"latencyMs": 99},
    }


# --- SigV4 -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KnownKey:
    secret: str
    token: str | None = None


def verify_sigv4(method: str, raw_path: str, headers: dict[str, str], body: bytes, keys: dict[str, KnownKey]
                 ) -> tuple[str, str] | None:
    """None when the request is signed correctly, else Bedrock's (exception name, message)."""
    auth = headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return ("MissingAuthenticationTokenException", "Missing Authentication Token")
    fields = dict(part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    access_key, date, region, service, terminal = fields["Credential"].split("/")
    known = keys.get(access_key)
    if known is None:
        return ("UnrecognizedClientException", "The security token included in the request is invalid.")
    if known.token is not None and headers.get("x-amz-security-token") != known.token:
        return ("UnrecognizedClientException", "The security token included in the request is invalid.")
    amz_date = headers.get("x-amz-date", "")
    signed = fields["SignedHeaders"].split(";")
    unsigned_amz = [h for h in headers if h.startswith("x-amz-") and h not in signed]
    if service != "bedrock" or terminal != "aws4_request" or date != amz_date[:8] or "host" not in signed \
            or "x-amz-date" not in signed or unsigned_amz:
        return ("InvalidSignatureException", f"Invalid credential scope or signed headers (unsigned: {unsigned_amz})")
    request = AWSRequest(method=method, url=f"http://{headers['host']}{raw_path}",
                         headers={name: headers[name] for name in signed if name in headers}, data=body)
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(ReadOnlyCredentials(access_key, known.secret, known.token, None), service, region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, fields["Signature"]):
        return ("InvalidSignatureException", "The request signature we calculated does not match the signature you "
                "provided. Check your AWS Secret Access Key and signing method.")
    return None


def validate_input(operation: str, params: dict[str, Any]) -> str | None:
    report = ParamValidator().validate(params, _MODEL.operation_model(operation).input_shape)
    return report.generate_report() if report.has_errors() else None


# --- the server ------------------------------------------------------------------------------------------------
@dataclass
class Scripted:
    """The answer to the next request: JSON, event-stream frames, or a Bedrock error."""

    status: int = 200
    body: Any = None
    frames: list[bytes] | None = None
    error_type: str | None = None
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Received:
    operation: str
    model_id: str
    raw_path: str
    headers: dict[str, str]
    body: Any
    region: str


class FakeBedrock(ServedFake):
    """Start with :meth:`start`; allow keys with :meth:`allow`; script answers with :meth:`enqueue`."""

    STREAM_WORDS = ["Hello", " from", " the", " fake", " Bedrock", "."]

    def __init__(self) -> None:
        self.keys: dict[str, KnownKey] = {}
        self.expired: set[str] = set()
        self.api_keys: set[str] = set()
        self.received: list[Received] = []
        self.rejected: list[tuple[str, str]] = []
        self.scripts: list[Scripted] = []
        self.chunk_gate: threading.Event | None = None
        self.split_frames = False
        self._lock = threading.Lock()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/model/{model_id:.+}/converse", self._converse)
        app.router.add_post("/model/{model_id:.+}/converse-stream", self._converse_stream)
        app.router.add_post("/model/{model_id:.+}/invoke", self._invoke)
        self._server = ThreadedServer(app)

    def allow(self, access_key: str, secret: str, token: str | None = None) -> None:
        with self._lock:
            self.keys[access_key] = KnownKey(secret, token)

    def enqueue(self, *items: Scripted) -> None:
        with self._lock:
            self.scripts.extend(items)

    def reset(self) -> None:
        with self._lock:
            self.received.clear()
            self.rejected.clear()
            self.scripts.clear()
            self.expired.clear()
            self.api_keys.clear()
        self.chunk_gate = None
        self.split_frames = False

    def _next_script(self) -> Scripted | None:
        with self._lock:
            return self.scripts.pop(0) if self.scripts else None

    @staticmethod
    def error(status: int, error_type: str, message: str) -> web.Response:
        return web.Response(status=status, body=orjson.dumps({"message": message}), headers={
            "content-type": "application/json", "x-amzn-ErrorType": f"{error_type}:http://internal.amazon.com/coral/",
            "x-amzn-RequestId": "fake-request-id"})

    async def _admit(self, request: web.Request, operation: str) -> tuple[web.Response | None, Any]:
        raw = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        auth = headers.get("authorization", "")
        if auth.startswith("Bearer ") and auth[7:] in self.api_keys:
            failure = None
            region = "bearer"
        else:
            failure = verify_sigv4(request.method, request.raw_path, headers, raw, self.keys)
            region = auth.split("Credential=", 1)[-1].split("/")[2] if "Credential=" in auth else ""
            if failure is None and auth.split("Credential=", 1)[1].split("/")[0] in self.expired:
                failure = ("ExpiredTokenException", "The security token included in the request is expired")
        if failure is not None:
            with self._lock:
                self.rejected.append(failure)
            return self.error(403, *failure), None
        body = orjson.loads(raw) if raw else None
        model_id = request.match_info["model_id"]
        with self._lock:
            self.received.append(Received(operation, model_id, request.raw_path, headers, body, region))
        if operation in ("Converse", "ConverseStream"):
            problem = validate_input(operation, {**(body or {}), "modelId": model_id})
            if problem is not None:
                return self.error(400, "ValidationException", problem), None
        return None, body

    async def _scripted(self, request: web.Request, script: Scripted) -> web.StreamResponse:
        if script.error_type:
            return self.error(script.status, script.error_type, script.message)
        if script.frames is not None:
            return await self._stream(request, script.frames)
        return web.Response(status=script.status, body=orjson.dumps(script.body),
                            headers={"content-type": "application/json", **script.headers})

    async def _converse(self, request: web.Request) -> web.StreamResponse:
        rejected, _ = await self._admit(request, "Converse")
        if rejected is not None:
            return rejected
        script = self._next_script()
        if script is not None:
            return await self._scripted(request, script)
        return web.json_response(converse_text("Hello from the fake Bedrock."),
                                 headers={"x-amzn-RequestId": "fake-request-id"})

    async def _converse_stream(self, request: web.Request) -> web.StreamResponse:
        rejected, _ = await self._admit(request, "ConverseStream")
        if rejected is not None:
            return rejected
        script = self._next_script()
        if script is not None:
            return await self._scripted(request, script)
        return await self._stream(request, frames_for(text_stream_events(self.STREAM_WORDS)))

    async def _stream(self, request: web.Request, frames: list[bytes]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": EVENT_STREAM, "x-amzn-RequestId": "fake-stream-id"})
        await response.prepare(request)
        for i, frame in enumerate(frames):
            if self.split_frames:
                for start in range(0, len(frame), 7):
                    await response.write(frame[start : start + 7])
                    await asyncio.sleep(0)
            else:
                await response.write(frame)
            if i == 0 and self.chunk_gate is not None:
                gate, deadline = self.chunk_gate, time.monotonic() + 10
                while not gate.is_set() and time.monotonic() < deadline:  # noqa: ASYNC110 - a thread's Event
                    await asyncio.sleep(0.005)
        await response.write_eof()
        return response

    async def _invoke(self, request: web.Request) -> web.StreamResponse:
        rejected, body = await self._admit(request, "InvokeModel")
        if rejected is not None:
            return rejected
        script = self._next_script()
        if script is not None:
            return await self._scripted(request, script)
        model_id = request.match_info["model_id"]
        if "cohere.embed" in model_id:
            if not isinstance(body, dict) or not isinstance(body.get("texts"), list) or "input_type" not in body:
                return self.error(400, "ValidationException", "Malformed input request: texts, input_type required")
            dims = int(body.get("output_dimension") or 8)
            vectors = [[float(len(t)), *[(i % 8) * 0.125 for i in range(dims - 1)]] for t in body["texts"]]
            return web.json_response(
                {"id": "fake-cohere", "texts": body["texts"], "response_type": "embeddings_by_type",
                 "embeddings": {"float": vectors}},
                headers={"X-Amzn-Bedrock-Input-Token-Count": str(sum(len(t.split()) for t in body["texts"]))})
        if not isinstance(body, dict) or not isinstance(body.get("inputText"), str):
            return self.error(400, "ValidationException", "Malformed input request: inputText required")
        dims = int(body.get("dimensions") or 8)
        vector = [float(len(body["inputText"])), *[(i % 8) * 0.125 for i in range(dims - 1)]]
        return web.json_response({"embedding": vector, "embeddingsByType": {"float": vector},
                                  "inputTextTokenCount": len(body["inputText"].split())})
