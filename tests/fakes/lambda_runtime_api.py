"""A Lambda Runtime API double on loopback: what a runtime process (awslambdaric, or our streaming runtime) talks to
inside a Lambda execution environment, plus RIE's invoke URL for curl-style use.

    GET  /2018-06-01/runtime/invocation/next          blocks until an event is queued; the event JSON with the
                                                      Lambda-Runtime-* headers (request id, deadline, ARN, trace)
    POST /2018-06-01/runtime/invocation/{id}/response  buffered (Content-Length) or streamed (chunked, with
                                                      Lambda-Runtime-Function-Response-Mode: streaming): each
                                                      HTTP chunk is recorded with its arrival time, then trailers
    POST /2018-06-01/runtime/invocation/{id}/error     and /2018-06-01/runtime/init/error
    POST /2015-03-31/functions/function/invocations    queues an event and answers with its result (like RIE)

An invocation is *over* when the runtime asks for the next event after answering it (the Invoke phase ends with
that call), which is when a test checks that its log records already reached the bucket.
"""

from __future__ import annotations

import base64
import itertools
import json
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PRELUDE_DELIMITER = b"\x00" * 8


@dataclass
class InvocationRecord:
    request_id: str
    event: bytes
    deadline_ms: int
    submitted_at: float = field(default_factory=time.monotonic)
    handed_at: float | None = None
    outcome: str = "pending"  # response | error
    streamed: bool = False
    content_type: str | None = None
    result: bytes = b""
    chunks: list[tuple[float, bytes]] = field(default_factory=list)
    trailers: dict[str, str] = field(default_factory=dict)
    error_type: str | None = None
    completed_at: float | None = None
    over_at: float | None = None
    completed: threading.Event = field(default_factory=threading.Event)
    over: threading.Event = field(default_factory=threading.Event)

    def wait(self, timeout_s: float = 30.0) -> InvocationRecord:
        if not self.completed.wait(timeout_s):
            raise TimeoutError(f"invocation {self.request_id} got no response within {timeout_s} s")
        return self

    def wait_over(self, timeout_s: float = 30.0) -> InvocationRecord:
        """Until the runtime asked for its next event: the invocation's Invoke phase is over."""
        self.wait(timeout_s)
        if not self.over.wait(timeout_s):
            raise TimeoutError(f"the runtime did not come back for the next event after {self.request_id}")
        return self

    def json(self) -> Any:
        return json.loads(self.result)

    @property
    def raw_stream(self) -> bytes:
        return b"".join(data for _, data in self.chunks)

    def prelude(self) -> dict[str, Any]:
        head, sep, _ = self.raw_stream.partition(PRELUDE_DELIMITER)
        assert sep, "no metadata prelude in the streamed response"
        return json.loads(head)

    def body(self) -> bytes:
        return self.raw_stream.partition(PRELUDE_DELIMITER)[2]

    def body_chunks(self) -> list[tuple[float, bytes]]:
        """The body's chunks with arrival times (the chunk that carried the prelude counts from the delimiter)."""
        out: list[tuple[float, bytes]] = []
        seen_prelude = False
        for at, data in self.chunks:
            if not seen_prelude:
                if PRELUDE_DELIMITER in data:
                    seen_prelude = True
                    data = data.partition(PRELUDE_DELIMITER)[2]
                else:
                    continue
            if data:
                out.append((at, data))
        return out

    def error_body(self) -> Any:
        encoded = self.trailers.get("lambda-runtime-function-error-body")
        return json.loads(base64.b64decode(encoded)) if encoded else json.loads(self.result or b"null")


class RuntimeApiDouble:
    def __init__(self, function_name: str = "skyrelay-test") -> None:
        self.function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self._queue: queue.Queue[InvocationRecord] = queue.Queue()
        self._records: dict[str, InvocationRecord] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.next_calls: list[float] = []
        self.init_errors: list[dict[str, Any]] = []
        self._server = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> RuntimeApiDouble:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def submit(self, event: Any, *, deadline_s: float = 30.0) -> InvocationRecord:
        raw = event if isinstance(event, bytes) else json.dumps(event).encode()
        record = InvocationRecord(str(uuid.uuid4()), raw, int((time.time() + deadline_s) * 1000))
        with self._lock:
            self._records[record.request_id] = record
        self._queue.put(record)
        return record

    def invoke(self, event: Any, *, deadline_s: float = 30.0, timeout_s: float = 30.0) -> InvocationRecord:
        return self.submit(event, deadline_s=deadline_s).wait(timeout_s)

    # --- server side ----------------------------------------------------------------------------------------
    def _next(self) -> InvocationRecord | None:
        now = time.monotonic()
        with self._lock:
            self.next_calls.append(now)
            for record in self._records.values():
                if record.completed.is_set() and not record.over.is_set():
                    record.over_at = now
                    record.over.set()
        while not self._stopping.is_set():
            try:
                record = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            record.handed_at = time.monotonic()
            return record
        return None

    def record(self, request_id: str) -> InvocationRecord:
        with self._lock:
            return self._records[request_id]

    def _complete(self, request_id: str, **fields: Any) -> InvocationRecord:
        record = self.record(request_id)
        for name, value in fields.items():
            setattr(record, name, value)
        record.completed_at = time.monotonic()
        record.completed.set()
        return record


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A runtime killed mid-call (tests and benchmarks stop runtimes at will) is not an error of the double."""
        return


def _handler_for(double: RuntimeApiDouble) -> type[BaseHTTPRequestHandler]:
    counter = itertools.count()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _chunks(self, chunks: list[tuple[float, bytes]]) -> dict[str, str]:
            """Reads a chunked body into ``chunks`` (live), timing each chunk as it arrives; returns the trailers."""
            while True:
                size_line = self.rfile.readline()
                if not size_line:
                    break
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    break
                data = self.rfile.read(size)
                chunks.append((time.monotonic(), data))
                self.rfile.readline()
            trailers: dict[str, str] = {}
            while (line := self.rfile.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                trailers[name.strip().lower()] = value.strip()
            return trailers

        def do_GET(self) -> None:
            if self.path != "/2018-06-01/runtime/invocation/next":
                self._reply(404, b'{"errorType":"NotFound"}')
                return
            record = double._next()
            if record is None:
                self.close_connection = True
                return
            self._reply(200, record.event, {
                "Lambda-Runtime-Aws-Request-Id": record.request_id,
                "Lambda-Runtime-Deadline-Ms": str(record.deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": double.function_arn,
                "Lambda-Runtime-Trace-Id": f"Root=1-{int(time.time()):08x}-{next(counter):024x};Sampled=0",
            })

        def do_POST(self) -> None:
            parts = self.path.strip("/").split("/")
            if self.path == "/2015-03-31/functions/function/invocations":
                record = double.submit(self._body()).wait(900)
                headers = {"X-Amz-Function-Error": "Unhandled"} if record.outcome == "error" else {}
                self._reply(200, record.result if record.outcome == "response" else b"{}", headers)
                return
            if parts[:3] == ["2018-06-01", "runtime", "init"]:
                double.init_errors.append({"type": self.headers.get("Lambda-Runtime-Function-Error-Type"),
                                           "body": json.loads(self._body() or b"null")})
                self._reply(202, b'{"status":"OK"}')
                return
            if len(parts) != 5 or parts[:3] != ["2018-06-01", "runtime", "invocation"]:
                self._reply(404, b'{"errorType":"NotFound"}')
                return
            request_id, kind = parts[3], parts[4]
            if kind == "error":
                double._complete(request_id, outcome="error", result=self._body(),
                                 error_type=self.headers.get("Lambda-Runtime-Function-Error-Type"))
            elif self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                streaming = self.headers.get("Lambda-Runtime-Function-Response-Mode", "").lower() == "streaming"
                content_type = self.headers.get("Content-Type")
                chunks = double.record(request_id).chunks
                trailers = self._chunks(chunks)
                error_type = trailers.get("lambda-runtime-function-error-type")
                double._complete(request_id, outcome="error" if error_type else "response", streamed=streaming,
                                 content_type=content_type, trailers=trailers, error_type=error_type,
                                 result=b"".join(data for _, data in chunks))
            else:
                double._complete(request_id, outcome="response", result=self._body(),
                                 content_type=self.headers.get("Content-Type"))
            self._reply(202, b'{"status":"OK"}')

    return Handler
