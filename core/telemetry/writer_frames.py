"""The wire between the gateway and its log writer process: length-prefixed frames over a pair of pipes.

A frame is one kind byte, a 4-byte big-endian payload length and the payload. The gateway sends

* ``S`` once, first: the settings the writer builds its sink and pipeline from, as plain values
  (:func:`plain_settings`; the writer does not build the pydantic settings model: about 12 MiB and 0.2 s less);
* ``E`` request logs, one after another: a fixed header of lengths, the entry's JSON-like fields as one JSON
  array, then its request body, response body and stream chunks as they are (:func:`pack_entry`);
* ``Q`` a query: ``(query id, name, argument)`` with name ``flush`` (argument: the deadline), ``check`` (the
  sink) or ``metrics``.

The writer sends ``A`` (its counters, after every change: ``done`` is how many records it has stored, spilled or
given up on, which lets the gateway forget them) and ``R`` (``(query id, answer)``).

Packing a request log must cost the gateway far less than building its record, which is the point of the separate
process: ``orjson`` for its fields and a join of its bytes take about a third of what ``marshal`` did for the
whole entry. Control frames (settings, acks, queries) are ``marshal``, read only by the same interpreter build,
which the writer process always is (it is started from ``sys.executable``).
"""

from __future__ import annotations

import json
import marshal
import operator
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import orjson

from core.telemetry.records import RequestLog

if TYPE_CHECKING:
    from core.settings import Settings

SETTINGS = b"S"
ENTRIES = b"E"
QUERY = b"Q"
ACK = b"A"
REPLY = b"R"

HEADER = struct.Struct("!cI")
#: Before each packed entry in an ``E`` frame: the entry's length after these 20 bytes, then the lengths of its
#: JSON fields, request body and response body, and its number of stream chunks (:data:`_NO_CHUNKS`: none).
_ENTRY = struct.Struct("!IIIII")
_NO_CHUNKS = 0xFFFFFFFF
#: Larger frames are refused by the reader: a corrupt length must not make it allocate gigabytes.
MAX_FRAME_BYTES = 256 * 1024 * 1024

_FIELDS: tuple[str, ...] = tuple(RequestLog.__slots__)  # dataclass(slots=True)
#: Fields that travel as bytes: the bodies (the request body as the JSON the caller sent) and the stream chunks.
_BYTES_FIELDS = ("request_body", "response_body", "stream_chunks")
#: Every other field: plain scalars and JSON-like values, which travel as one JSON array.
_JSON_FIELDS = tuple(name for name in _FIELDS if name not in _BYTES_FIELDS)
_JSON_VALUES = operator.attrgetter(*_JSON_FIELDS)
#: Where the bytes fields go back among the JSON ones: a RequestLog is rebuilt from positional arguments
#: (keyword arguments cost the writer about 5 % of a record, matching 30 names per call).
_REQUEST_AT, _RESPONSE_AT, _CHUNKS_AT = (_FIELDS.index(name) for name in _BYTES_FIELDS)
if not _REQUEST_AT < _RESPONSE_AT < _CHUNKS_AT:
    raise RuntimeError("unpack_entries inserts the bytes fields in RequestLog's order: request, response, chunks")
_BYTES_VALUES = operator.attrgetter(*_BYTES_FIELDS)


def frame(kind: bytes, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def pack_entry(entry: RequestLog) -> bytes:
    """One request log as bytes, on the hot path: about 17,000 instructions (callgrind), most of them reading the
    entry's 30 attributes and writing its JSON.

    The scalar and JSON-like fields (headers, metadata, ids, times) go through ``orjson`` as one array (it copies
    ASCII strings as they are); the bodies and stream chunks are bytes already and are only joined behind a
    fixed header of lengths. Packed at submit rather than when a batch is sent: the entry and its dicts then die
    at once, instead of living on through garbage collections (which would promote them and make full
    collections come sooner). Something JSON has no form for (a custom value in metadata or an error, a dict key
    that is not a string) is sent as its ``str``, which is what the record would hold anyway.
    """
    try:
        fields = orjson.dumps(_JSON_VALUES(entry))  # no options: orjson's str-key path is the fast one
    except orjson.JSONEncodeError:
        fields = _json_of(_JSON_VALUES(entry))
    request_body, response_body, chunks = _BYTES_VALUES(entry)
    if type(request_body) is not bytes:  # a parsed body (or none): what the record would write of it
        request_body = b"" if request_body is None else _json_of(request_body)
    if response_body is None:
        response_body = b""
    n_fields, n_request, n_response = len(fields), len(request_body), len(response_body)
    if chunks is None:
        return b"".join((_ENTRY.pack(n_fields + n_request + n_response, n_fields, n_request, n_response, _NO_CHUNKS),
                         fields, request_body, response_body))
    lengths = struct.pack(f"!{len(chunks)}I", *map(len, chunks))
    size = len(lengths) + n_fields + n_request + n_response + sum(map(len, chunks))
    return b"".join((_ENTRY.pack(size, n_fields, n_request, n_response, len(chunks)), lengths, fields, request_body,
                     response_body, *chunks))


def _json_of(value: Any) -> bytes:
    """JSON for values the fast path refuses: odd types as their ``str``, non-string keys as strings, and integers
    past 64 bits (which only the json module writes)."""
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        return json.dumps(value, default=str).encode()


def unpack_entries(payload: bytes) -> Iterator[RequestLog]:
    """The request logs of an ``E`` frame, one after another (see :data:`_ENTRY`)."""
    view, offset, end = memoryview(payload), 0, len(payload)
    while offset < end:
        size, fields_n, request_n, response_n, count = _ENTRY.unpack_from(view, offset)
        offset += _ENTRY.size
        chunks: list[bytes] | None = None
        at = offset
        if count != _NO_CHUNKS:
            lengths = struct.unpack_from(f"!{count}I", view, at)
            at += 4 * count
        fields = orjson.loads(view[at:at + fields_n])
        at += fields_n
        request_body = bytes(view[at:at + request_n]) or None
        at += request_n
        response_body = bytes(view[at:at + response_n]) or None
        at += response_n
        if count != _NO_CHUNKS:
            chunks = []
            for length in lengths:
                chunks.append(bytes(view[at:at + length]))
                at += length
        if len(fields) != len(_JSON_FIELDS):
            raise ValueError(f"a packed request log has {len(fields)} fields, not {len(_JSON_FIELDS)}")
        fields.insert(_REQUEST_AT, request_body)
        fields.insert(_RESPONSE_AT, response_body)
        fields.insert(_CHUNKS_AT, chunks)
        yield RequestLog(*fields)
        offset += size


def plain_settings(settings: Settings) -> bytes:
    """The ``S`` payload: every setting as a plain value, secrets revealed (the pipe is private to the two
    processes) and named, so the writer can wrap them again."""
    values: dict[str, Any] = {}
    secrets: list[str] = []
    for name, value in settings:
        if hasattr(value, "get_secret_value"):
            values[name] = value.get_secret_value()
            secrets.append(name)
        elif value is None or isinstance(value, (str, int, float, bool)):
            values[name] = value
        elif isinstance(value, (list, tuple)):
            values[name] = [item if isinstance(item, (str, int, float, bool)) else str(item) for item in value]
        else:
            values[name] = str(value)
    return marshal.dumps({"values": values, "secrets": secrets})


class RevealedSecret:
    """A secret setting in the writer: read with ``get_secret_value()``, as pydantic's ``SecretStr``; never printed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "RevealedSecret('**********')"


class WriterSettings:
    """The settings the writer process reads, by attribute like :class:`core.settings.Settings`."""

    def __init__(self, payload: bytes) -> None:
        document = marshal.loads(payload)
        self.__dict__.update(document["values"])
        for name in document["secrets"]:
            if self.__dict__.get(name) is not None:
                self.__dict__[name] = RevealedSecret(self.__dict__[name])

    def __getattr__(self, name: str) -> Any:  # only for names the gateway did not send
        raise AttributeError(f"setting {name!r} was not sent to the log writer")


def encode(value: Any) -> bytes:
    """Acks, queries and replies: plain values only."""
    return marshal.dumps(value)


def decode(payload: bytes) -> Any:
    return marshal.loads(payload)


class FrameReader:
    """Cuts a byte stream into frames; feed it whatever the pipe gave, take the complete frames out."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        self._buffer += data
        frames: list[tuple[bytes, bytes]] = []
        buffer, start = self._buffer, 0
        while len(buffer) - start >= HEADER.size:
            kind, length = HEADER.unpack_from(buffer, start)
            if length > MAX_FRAME_BYTES:
                raise ValueError(f"log writer frame of {length} bytes: the stream is corrupt")
            end = start + HEADER.size + length
            if len(buffer) < end:
                break
            frames.append((kind, bytes(buffer[start + HEADER.size:end])))
            start = end
        if start:
            del buffer[:start]
        return frames
