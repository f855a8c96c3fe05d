from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.gateway_process import GatewayProcess


@pytest.fixture(scope="session", autouse=True)
def _private_cache_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Caches the gateway keeps (the price-table export) go to this run's temp dir, never the user's home; every
    gateway process the tests start inherits it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache-home")))
        yield


@pytest.fixture(scope="session")
def fake_openai_server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_openai(fake_openai_server: FakeOpenAI) -> FakeOpenAI:
    fake_openai_server.reset()
    return fake_openai_server


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """One `skyrelay serve` process per test module, on the embedded defaults (no keys, file logs)."""
    log_dir = tmp_path_factory.mktemp("gateway") / "logs"
    process = GatewayProcess(log_dir).start()
    yield process
    process.stop()


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[object]:
    """Factory for tests that need their own gateway settings; every process is stopped afterwards."""
    started: list[GatewayProcess] = []

    def start(env: dict[str, str] | None = None, args: list[str] | None = None) -> GatewayProcess:
        process = GatewayProcess(tmp_path / f"logs{len(started)}", env=env, args=args).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
