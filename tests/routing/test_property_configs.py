"""Property: any config — valid or not, nested to any depth — ends in a response or a clear 4xx, never a hang."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from core.config.plan import Planner
from core.config.store import ConfigStore
from core.config.target import Target
from core.errors import SkyrelayError
from core.providers.base import Operation, ProviderResult
from core.providers.registry import ProviderDeps, ProviderRegistry
from core.routing.attempt import CallContext
from core.routing.breaker import BreakerSettings, MemoryBreaker
from core.routing.clock import ManualClock
from core.routing.executor import Executor, RunStats
from core.security.ssrf import SsrfGuard
from core.settings import Settings
from core.transport.httpx_client import HttpxUpstreamClient

STATUSES = [200, 200, 400, 408, 429, 500, 502, 503]


class ScriptedAttempts:
    """Answers attempts from a cycling list of statuses; counts calls."""

    def __init__(self, statuses: list[int]) -> None:
        self._statuses = itertools.cycle(statuses)
        self.calls = 0

    async def attempt(self, target: Target, ctx: CallContext) -> ProviderResult:
        self.calls += 1
        await asyncio.sleep(0)
        return ProviderResult(status=next(self._statuses), headers=[("retry-after", "1")], provider=target.provider,
                              body=b"{}")


def leaf() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"provider": st.sampled_from(["openai"] * 6 + ["groq", "nope"])}, optional={
        "name": st.sampled_from(["a", "b", "c"]),
        "weight": st.sampled_from([0, 1, 1, 2, 3, 1, 2, -1]),
        "retry": st.fixed_dictionaries({"attempts": st.integers(-1, 4)}, optional={
            "on_status_codes": st.lists(st.sampled_from(STATUSES), max_size=3),
            "use_retry_after_header": st.booleans()}),
        "override_params": st.dictionaries(st.sampled_from(["model", "temperature"]), st.text(max_size=3),
                                           max_size=2),
        "request_timeout": st.integers(-5, 5000),
    })


def node(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    strategy = st.fixed_dictionaries({"mode": st.sampled_from(["single", "fallback", "loadbalance", "conditional",
                                                               "fallback", "loadbalance", "bogus"])}, optional={
        "on_status_codes": st.lists(st.sampled_from(STATUSES), max_size=3),
        "conditions": st.lists(st.fixed_dictionaries({
            "query": st.sampled_from([{"metadata.t": "x"}, {"params.model": {"$regex": "^m"}}, {"$or": []},
                                      {"metadata.n": {"$gt": 3}}, {"x": {"$bad": 1}}]),
            "then": st.sampled_from(["a", "b", "c"])}), max_size=3),
        "default": st.sampled_from(["a", "b", "z"]),
    })
    return st.fixed_dictionaries({"strategy": strategy, "targets": st.lists(children, min_size=0, max_size=4)},
                                 optional={"name": st.sampled_from(["a", "b", "c"]),
                                           "weight": st.integers(0, 2),
                                           "retry": st.fixed_dictionaries({"attempts": st.integers(0, 2)})})


CONFIGS = st.recursive(leaf(), node, max_leaves=12)


def build(statuses: list[int]) -> tuple[Planner, Executor, ScriptedAttempts]:
    guard = SsrfGuard([])
    registry = ProviderRegistry(ProviderDeps(upstream=HttpxUpstreamClient(), guard=guard, settings=Settings()))
    attempts = ScriptedAttempts(statuses)
    clock = ManualClock()
    executor = Executor(attempts, MemoryBreaker(BreakerSettings(failure_threshold=2), clock), clock)  # type: ignore[arg-type]
    return Planner(registry, guard, ConfigStore(None)), executor, attempts


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=CONFIGS, statuses=st.lists(st.sampled_from(STATUSES), min_size=1, max_size=6),
       metadata=st.sampled_from([{}, {"t": "x"}, {"n": "5"}]))
def test_random_configs_answer_or_fail_clearly(config: dict[str, Any], statuses: list[int],
                                               metadata: dict[str, Any]) -> None:
    planner, executor, attempts = build(statuses)
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}

    async def run() -> int:
        plan = planner.plan({"x-portkey-config": json.dumps(config)}, body, None)
        ctx = CallContext(operation=Operation.CHAT, body=body, raw_body=None, client_headers={}, trace_id="t",
                          metadata=metadata, path="/v1/chat/completions")
        outcome = await executor.execute(plan, ctx, RunStats())
        return outcome.status

    try:
        status = asyncio.run(asyncio.wait_for(run(), timeout=5))
    except SkyrelayError as error:
        event("rejected with a clear 4xx")
        assert 400 <= error.status < 500, error
        assert error.body()["error"]["message"]
        return
    event("routed to an answer")
    assert status in STATUSES or status == 503  # 503 also from an open circuit
    assert attempts.calls <= 12 * 11  # every leaf at most 1 + 10 retries: bounded work
