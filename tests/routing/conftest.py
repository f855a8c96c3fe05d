from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.routing.clock import ManualClock
from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.inprocess import InProcessGateway


@pytest.fixture(scope="session")
def upstream_servers() -> Iterator[list[FakeOpenAI]]:
    fakes = [FakeOpenAI().start() for _ in range(3)]
    yield fakes
    for fake in fakes:
        fake.stop()


@pytest.fixture
def upstreams(upstream_servers: list[FakeOpenAI]) -> list[FakeOpenAI]:
    for fake in upstream_servers:
        fake.reset()
    return upstream_servers


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def routed_gateway(tmp_path: Path, clock: ManualClock) -> Iterator[InProcessGateway]:
    gateway = InProcessGateway(tmp_path / "logs", clock=clock, breaker_failure_threshold=3,
                               breaker_cooldown_s=30).start()
    yield gateway
    gateway.stop()
