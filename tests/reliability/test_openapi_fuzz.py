"""Schemathesis fuzzes a real ``skyrelay serve`` through its own OpenAPI document.

Every generated request, valid or not, must get an answer the document describes: no 5xx, a documented status,
a documented content type and a body that matches the documented schema. Requests carry provider headers that
point at the fake OpenAI upstream on loopback, so schema-valid bodies reach a provider and succeed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.gateway_process import GatewayProcess

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def fuzz_upstream() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def fuzz_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    process = GatewayProcess(tmp_path_factory.mktemp("fuzz") / "logs").start()
    yield process
    process.stop()


def _operations(gateway: GatewayProcess) -> list[APIOperation]:
    loaded = schemathesis.openapi.from_url(f"{gateway.url}/openapi.json")
    operations = []
    for result in loaded.get_all_operations():
        assert isinstance(result, Ok), f"the document has an invalid operation: {result}"
        operations.append(result.ok())
    return operations


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_every_generated_request_gets_a_documented_answer(fuzz_gateway: GatewayProcess, fuzz_upstream: FakeOpenAI,
                                                          mode: GenerationMode) -> None:
    headers = {"x-portkey-provider": "openai", "x-portkey-custom-host": fuzz_upstream.url,
               "authorization": "Bearer sk-fuzz-not-a-real-key"}
    operations = _operations(fuzz_gateway)
    assert {op.path for op in operations} >= {"/v1/chat/completions", "/v1/embeddings", "/v1/messages"}
    failures: list[str] = []
    calls = 0
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not operation.body:
            continue  # nothing to break in a body-less GET: its negative space is empty
        # Fields the gateway does not need pass through to the provider unvalidated (the provider is the judge), so
        # "invalid data accepted" is by design; every invalid request must still get a documented, well-formed answer.
        # The OpenAI provider has no token counting, so count_tokens answers a documented 400 for valid bodies.
        excluded = [negative_data_rejection] if mode is GenerationMode.NEGATIVE else []
        if operation.path.endswith("/count_tokens"):
            excluded.append(positive_data_acceptance)
        calls += _fuzz(operation, mode, headers, excluded, failures)

    assert calls > 0
    assert not failures, "\n\n".join(failures[:10])


def _fuzz(operation: APIOperation, mode: GenerationMode, headers: dict[str, str], excluded: list[Any],
          failures: list[str]) -> int:
    """Runs MAX_EXAMPLES generated cases against one operation; returns how many were sent."""
    calls = 0

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def fuzz(case: schemathesis.Case) -> None:
        nonlocal calls
        calls += 1
        try:
            case.call_and_validate(headers=headers, timeout=30, excluded_checks=excluded)
        except (AssertionError, FailureGroup) as failure:
            failures.append(f"{case.method} {case.path} body={case.body!r:.400}: {str(failure)[:600]}")

    fuzz()
    return calls


def test_gateway_healthy_after_fuzzing(fuzz_gateway: GatewayProcess, tmp_path: Path) -> None:
    assert fuzz_gateway.proc is not None and fuzz_gateway.proc.poll() is None
    assert httpx.get(f"{fuzz_gateway.url}/v1/health", timeout=5).status_code == 200
    assert "Traceback" not in fuzz_gateway.stderr()
