"""The wire between the gateway and its log writer process: length-prefixed frames over a pair of pipes.

A frame is one kind byte, a 4-byte big-endian payload length and the payload. The gateway sends

* ``S`` once, first: the settings the writer builds its sink and pipeline from, as plain values
  (:func:`plain_settings`; the writer does not build the pydantic settings model: about 12 MiB and 0.2 s less);
* ``E`` request logs, each after its 4-byte length: a ``marshal``'d tuple of the entry's JSON-like fields as one
  JSON array, then its request body, response body and stream chunks as bytes (:func:`pack_entry`);
* ``Q`` a query: ``(query id, name, argument)`` with name ``flush`` (argument: the deadline), ``check`` (the
  sink) or ``metrics``.

The writer sends ``A`` (its counters, after every change: ``done`` is how many records it has stored, spilled or
given up on, which lets the gateway forget them) and ``R`` (``(query id, answer)``).

Why ``orjson`` and ``marshal``: packing a request log must cost the gateway far less than building its record,
which is the point of the separate process. Together they pack one in about 2.5 us (``marshal`` alone: 6 us);
``marshal`` is read only by the same interpreter build, which the writer process always is (it is started
from ``sys.executable``). Control frames (settings, acks, queries) are plain ``marshal``.
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
_LENGTH = struct.Struct("!I")  # before each packed entry in an ``E`` frame
#: Version 2: no back-references. Versions 3+ track every object written in a hash table to share repeats, which
#: costs more (callgrind: about a third of the packing) than the few repeated strings of a request log save.
_MARSHAL_VERSION = 2
#: Larger frames are refused by the reader: a corrupt length must not make it allocate gigabytes.
MAX_FRAME_BYTES = 256 * 1024 * 1024

_FIELDS: tuple[str, ...] = tuple(RequestLog.__slots__)  # dataclass(slots=True)
#: Fields that may hold bytes (or, for ``request_body``, a parsed body): these travel as ``marshal`` values.
_BYTES_FIELDS = ("request_body", "response_body", "stream_chunks")
#: Every other field: plain scalars and JSON-like values, which travel as one JSON array.
_JSON_FIELDS = tuple(name for name in _FIELDS if name not in _BYTES_FIELDS)
_JSON_VALUES = operator.attrgetter(*_JSON_FIELDS)
_BYTES_VALUES = operator.attrgetter(*_BYTES_FIELDS)
_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS


def frame(kind: bytes, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def pack_entry(entry: RequestLog) -> bytes:
    """One request log as bytes, on the hot path (about 2.5 us while its data is still in cache).

    Two encoders, each for what it is cheap at: the scalar and JSON-like fields (headers, metadata, ids, times)
    go through ``orjson`` as one array — it copies ASCII strings as they are, where ``marshal`` (version 2)
    allocates a UTF-8 copy of every string; the bodies and stream chunks are bytes, which ``marshal`` copies in
    one piece (the request body is the JSON the caller sent, not the dict parsed from it).
    Packed at submit rather than when a batch is sent: the entry and its dicts then die at once, instead of
    living on through garbage collections (which would promote them and make full collections come sooner).
    Something JSON has no form for (a custom value in metadata or an error) is sent as its ``str``, which is what
    the record would hold anyway.
    """
    try:
        fields = orjson.dumps(_JSON_VALUES(entry), default=str, option=_JSON_OPTIONS)
    except orjson.JSONEncodeError:  # e.g. an integer past 64 bits, which the json module can write
        fields = json.dumps(_JSON_VALUES(entry), default=str).encode()
    request_body, response_body, chunks = _BYTES_VALUES(entry)
    try:
        data = marshal.dumps((fields, request_body, response_body, chunks), _MARSHAL_VERSION)
    except ValueError:  # a parsed request body with a value marshal does not know
        request_body = orjson.loads(orjson.dumps(request_body, default=str, option=_JSON_OPTIONS))
        chunks = None if chunks is None else [bytes(chunk) for chunk in chunks]
        data = marshal.dumps((fields, request_body, response_body, chunks), _MARSHAL_VERSION)
    return _LENGTH.pack(len(data)) + data


def unpack_entries(payload: bytes) -> Iterator[RequestLog]:
    """The request logs of an ``E`` frame: length-prefixed entries one after another (read with
    ``marshal.loads`` on slices: ``marshal.load`` on a file object reads byte by byte, 12 times slower)."""
    view, offset, end = memoryview(payload), 0, len(payload)
    while offset < end:
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += _LENGTH.size
        fields, request_body, response_body, chunks = marshal.loads(view[offset:offset + length])
        yield RequestLog(**dict(zip(_JSON_FIELDS, orjson.loads(fields), strict=True)), request_body=request_body,
                         response_body=response_body, stream_chunks=chunks)
        offset += length


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
