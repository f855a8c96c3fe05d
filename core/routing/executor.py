"""Walks a :class:`Plan`: strategies choose children, leaves are attempted with retries and the circuit breaker.

The executor never branches on provider names; a leaf is one :class:`Target` and every call goes through the
:class:`AttemptRunner`. What comes back is an :class:`Outcome`: the answer to send (a provider result or an error),
the leaf that produced it, and the numbers Portkey reports in ``x-portkey-retry-attempt-count``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.cache.response_cache import DISABLED, CacheLookup, ResponseCache
from core.config.plan import Plan, PlanNode
from core.config.target import Target
from core.errors import GatewayInternalError, SkyrelayError, UpstreamConnectionError
from core.providers.base import ProviderResult
from core.ratelimit.base import RateLimiter, limited_error
from core.ratelimit.tokens import estimate_tokens
from core.routing.attempt import AttemptRunner, CallContext, prepare_body
from core.routing.breaker import Breaker
from core.routing.clock import Clock
from core.routing.retry import RETRY_AFTER_BUDGET_S, retry_after_s
from core.routing.strategies import Strategy, default_strategies

logger = logging.getLogger("skyrelay")

#: Options that place a target somewhere distinct (a region, a resource): part of its breaker identity.
_LOCATION_OPTIONS = ("aws_region", "vertex_region", "vertex_project_id", "resource_name", "deployment_id")


class CircuitOpenError(UpstreamConnectionError):
    default_code = "circuit_open"

    def __init__(self, target: Target) -> None:
        super().__init__(f"{target.provider} target {target.path} is failing; its circuit is open, retry later",
                         provider=target.provider, status=503, code="circuit_open")


def breaker_key(target: Target, ctx: CallContext) -> str:
    model = target.override_params.get("model") or ctx.body.get("model") or ""
    location = "|".join(str(target.options.get(name) or "") for name in _LOCATION_OPTIONS)
    return (f"{target.gateway or ''}|{target.provider}|{target.custom_host or ''}|{target.virtual_key or ''}|"
            f"{location}|{model}")


@dataclass(slots=True)
class Outcome:
    node: PlanNode
    result: ProviderResult | None = None
    error: SkyrelayError | None = None
    retry_count: int = 0
    cache: CacheLookup | None = None

    @property
    def cache_status(self) -> str:
        return self.cache.status if self.cache is not None else DISABLED

    @property
    def status(self) -> int:
        if self.result is not None:
            return self.result.status
        assert self.error is not None
        return self.error.status

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def gateway_exception(self) -> bool:
        return self.error is not None and self.error.gateway_exception

    async def discard(self) -> None:
        if self.result is not None:
            await self.result.aclose()


@dataclass(slots=True)
class RunStats:
    attempts: int = 0
    retries: int = 0
    fallbacks: int = 0


class Executor:
    def __init__(self, attempts: AttemptRunner, breaker: Breaker, clock: Clock,
                 strategies: dict[str, Strategy] | None = None, rand: Callable[[], float] = random.random,
                 cache: ResponseCache | None = None, limiter: RateLimiter | None = None,
                 remote_healthy: Callable[[str], bool] | None = None) -> None:
        self._attempts = attempts
        self._remote_healthy = remote_healthy
        self._breaker = breaker
        self._cache = cache
        self._limiter = limiter
        self._clock = clock
        self._strategies = strategies or default_strategies(rand)
        self._rand = rand

    async def execute(self, plan: Plan, ctx: CallContext, stats: RunStats) -> Outcome:
        context = {"metadata": ctx.metadata or {}, "params": ctx.body, "url": {"pathname": ctx.path}}
        return await self._run(plan.root, ctx, context, stats)

    async def _run(self, node: PlanNode, ctx: CallContext, context: dict[str, Any], stats: RunStats) -> Outcome:
        if node.target is not None:
            return await self._leaf(node, node.target, ctx, stats)
        assert node.mode is not None
        strategy = self._strategies[node.mode]
        candidates = strategy.candidates(node, context, lambda child: self._healthy(child, ctx))
        last: Outcome | None = None
        for child in candidates:
            if last is not None:
                await last.discard()
                stats.fallbacks += 1
            last = await self._run(child, ctx, context, stats)
            if not strategy.goes_on(node, last.status, last.gateway_exception):
                return last
        assert last is not None
        return last

    def _healthy(self, node: PlanNode, ctx: CallContext) -> bool:
        target = node.target
        if target is None:
            return True
        if target.gateway is not None and self._remote_healthy is not None and not self._remote_healthy(
                target.gateway):
            return False
        return not self._breaker.is_open(breaker_key(target, ctx))

    async def _leaf(self, node: PlanNode, target: Target, ctx: CallContext, stats: RunStats) -> Outcome:
        """Cache lookup, the virtual key's rate limit, then attempts with retries under the breaker."""
        lookup: CacheLookup | None = None
        if self._cache is not None and node.cache is not None:
            body, _ = prepare_body(ctx, target)
            lookup = await self._cache.lookup(node.cache, ctx.cache_namespace, target, ctx.operation, body,
                                              ctx.cache_force_refresh)
            if lookup is not None and lookup.result is not None:
                return Outcome(node, result=lookup.result, cache=lookup)
        if self._limiter is not None and target.rate_limits.active:
            decision, reservation = await self._limiter.acquire(
                f"vk:{target.virtual_key}", target.rate_limits, estimate_tokens(prepare_body(ctx, target)[0]))
            if not decision.allowed:
                return Outcome(node, error=limited_error(f"virtual key {target.virtual_key!r}", decision,
                                                         target.rate_limits))
            if reservation is not None:
                ctx.reservations.append(reservation)
        outcome = await self._attempts_with_retries(node, target, ctx, stats)
        outcome.cache = lookup
        if lookup is not None and outcome.ok and outcome.result is not None and outcome.result.body is not None:
            assert self._cache is not None
            self._cache.store_later(lookup, outcome.result.provider, outcome.result.body)
        return outcome

    async def _attempts_with_retries(self, node: PlanNode, target: Target, ctx: CallContext, stats: RunStats
                                     ) -> Outcome:
        policy = node.retry
        key = breaker_key(target, ctx)
        waited_for_retry_after = 0.0
        retry = 0
        while True:
            if not await self._breaker.allow(key):
                return Outcome(node, error=CircuitOpenError(target), retry_count=retry)
            stats.attempts += 1
            outcome = await self._attempt(node, target, ctx)
            await self._breaker.record(key, outcome.status)
            if outcome.ok or outcome.gateway_exception:
                outcome.retry_count = retry
                return outcome
            retryable = policy.retries_status(outcome.status) or isinstance(outcome.error, UpstreamConnectionError)
            if not retryable:
                outcome.retry_count = retry
                return outcome
            if retry >= policy.attempts:
                outcome.retry_count = -1 if policy.attempts else 0
                return outcome
            delay = policy.backoff_s(retry, self._rand)
            if policy.use_retry_after_header and outcome.result is not None and outcome.status in (429, 503):
                asked = retry_after_s(outcome.result.headers, time.time())
                if asked is not None:
                    if waited_for_retry_after + asked > RETRY_AFTER_BUDGET_S:
                        outcome.retry_count = -1
                        return outcome
                    waited_for_retry_after += asked
                    delay = asked
            await outcome.discard()
            await self._clock.sleep(delay)
            retry += 1
            stats.retries += 1

    async def _attempt(self, node: PlanNode, target: Target, ctx: CallContext) -> Outcome:
        try:
            return Outcome(node, result=await self._attempts.attempt(target, ctx))
        except SkyrelayError as error:
            return Outcome(node, error=error)
        except Exception as exc:
            logger.exception("provider %s failed in trace %s", target.provider, ctx.trace_id)
            return Outcome(node, error=GatewayInternalError(f"Something went wrong calling {target.provider}: "
                                                            f"{type(exc).__name__}"))
