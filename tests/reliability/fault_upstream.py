"""An upstream that misbehaves at the transport level, which an aiohttp app cannot do on purpose.

It speaks just enough HTTP/1.1 over raw asyncio streams to answer a chat stream, then, by mode: resets the TCP
connection after two chunks (``SO_LINGER`` 0 turns close into RST), or waits before its first byte. Given an
``ssl.SSLContext`` it serves HTTPS with whatever certificate it holds (self-signed, in the TLS test).
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import struct
import threading
from pathlib import Path

import orjson

CHUNK = {"id": "chatcmpl-fault", "object": "chat.completion.chunk", "created": 1764201600, "model": "gpt-4o-mini",
         "choices": [{"index": 0, "delta": {"content": "partial"}, "finish_reason": None}]}


class FaultUpstream:
    def __init__(self, mode: str, first_byte_delay_s: float = 0.0, tls: ssl.SSLContext | None = None,
                 chunked: bool = True) -> None:
        self.mode = mode
        self.chunked = chunked
        self.first_byte_delay_s = first_byte_delay_s
        self.requests = 0
        self._tls = tls
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}/v1"

    def start(self) -> FaultUpstream:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self._tls)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            await reader.readexactly(length)
            self.requests += 1
            if self.first_byte_delay_s:
                await asyncio.sleep(self.first_byte_delay_s)
            framing = b"transfer-encoding: chunked\r\n" if self.chunked else b""  # else the close ends the body
            frame = _chunk if self.chunked else bytes
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n" + framing
                         + b"connection: close\r\n\r\n")
            for _ in range(2):
                writer.write(frame(b"data: " + orjson.dumps(CHUNK) + b"\n\n"))
                await writer.drain()
                await asyncio.sleep(0.05)
            if self.mode == "reset_mid_stream":
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return
            writer.write(_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n" if self.chunked else b"data: [DONE]\n\n")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass  # the gateway gave up on us (timeout) or refused our certificate: both are the point
        writer.close()


def _chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk: with chunked framing, a reset before the last chunk is an unambiguous truncation."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def self_signed_context(directory: Path) -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate for 127.0.0.1, which no client trusts."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context
