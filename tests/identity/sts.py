"""moto's STS server behind a counting proxy on loopback.

The proxy forwards every STS call to moto unchanged and records it (action and parameters), so a test can count
STS calls per credential lifetime. It can also shorten the ``Expiration`` moto returns (to bring credentials into
botocore's refresh window without waiting an hour), answer with an STS error, and hand every issued credential to a
callback — the fake Bedrock runtime then accepts signatures made with exactly those credentials.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import aiohttp
from aiohttp import web
from moto.server import ThreadedMotoServer

from tests.fakes.server import ServedFake, ThreadedServer

_FIELD = re.compile(r"<(AccessKeyId|SecretAccessKey|SessionToken)>([^<]+)</\1>")
_EXPIRATION = re.compile(r"<Expiration>[^<]+</Expiration>")


@dataclass
class StsCall:
    action: str
    params: dict[str, str]


@dataclass(frozen=True)
class IssuedCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str


class CountingStsProxy(ServedFake):
    def __init__(self, moto_url: str, on_issued: Callable[[IssuedCredentials], None]) -> None:
        self._moto_url = moto_url
        self._on_issued = on_issued
        self._lock = threading.Lock()
        self.calls: list[StsCall] = []
        self.issued: list[IssuedCredentials] = []
        #: Seconds of validity to put in the next answers' Expiration (one entry per answer), instead of moto's.
        self.expires_in: list[float] = []
        #: STS error codes to answer the next calls with (one entry per call), e.g. "AccessDenied".
        self.deny: list[str] = []
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._server = ThreadedServer(app)

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.issued.clear()
            self.expires_in.clear()
            self.deny.clear()

    def count(self, action: str) -> int:
        with self._lock:
            return sum(1 for call in self.calls if call.action == action)

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        params = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        with self._lock:
            self.calls.append(StsCall(params.get("Action", "?"), params))
            denial = self.deny.pop(0) if self.deny else None
            expires_in = self.expires_in.pop(0) if self.expires_in else None
        if denial is not None:
            return web.Response(status=403, content_type="text/xml", text=(
                '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
                f"<Code>{denial}</Code><Message>not authorized to perform sts:AssumeRole</Message></Error>"
                "<RequestId>denied-1</RequestId></ErrorResponse>"))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with aiohttp.ClientSession() as session, session.post(
                f"{self._moto_url}{request.path_qs}", data=body, headers=headers) as answer:
            text = await answer.text()
            status = answer.status
        if expires_in is not None:
            when = (datetime.now(UTC) + timedelta(seconds=expires_in)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            text = _EXPIRATION.sub(f"<Expiration>{when}</Expiration>", text)
        fields = dict(_FIELD.findall(text))
        if len(fields) == 3:
            issued = IssuedCredentials(fields["AccessKeyId"], fields["SecretAccessKey"], fields["SessionToken"])
            with self._lock:
                self.issued.append(issued)
            self._on_issued(issued)
        return web.Response(status=status, text=text, content_type="text/xml")


@contextmanager
def moto_sts() -> Iterator[str]:
    """moto's server on a random loopback port; yields its URL."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
