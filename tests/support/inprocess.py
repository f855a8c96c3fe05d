"""Runs the gateway app under uvicorn in a background thread, in this process, on a free loopback port.

Used where a test must control the gateway's clock (retry delays, breaker cool-downs) while still going through
real HTTP and real clients.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from core.app import create_app
from core.gateway import Gateway, build_gateway
from core.routing.clock import Clock
from core.settings import Settings
from tests.support.gateway_process import free_port, read_records


class InProcessGateway:
    def __init__(self, log_dir: Path, clock: Clock | None = None, **settings: object) -> None:
        self.port = free_port()
        self.log_dir = log_dir
        self.settings = Settings(host="127.0.0.1", port=self.port, log_sink=f"file://{log_dir}",
                                 log_batch_max_age_s=0.05, **settings)  # type: ignore[arg-type]
        self.gateway: Gateway = build_gateway(self.settings, clock=clock)
        config = uvicorn.Config(create_app(self.gateway), host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on", loop="asyncio")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=lambda: asyncio.run(self._server.serve()), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> InProcessGateway:
        self._thread.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.02)
        raise RuntimeError("in-process gateway did not start")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)

    def records(self) -> list[dict]:
        return read_records(self.log_dir)
