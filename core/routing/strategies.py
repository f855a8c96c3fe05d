"""Strategies choose which children of a node to try, and whether to go on after one answered.

Composition, not branching on providers: each mode is a small object behind :class:`Strategy`; the executor walks
the tree asking the node's strategy. Nesting works to any depth because a child is just another node.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from core.config.conditions import evaluate
from core.config.plan import PlanNode
from core.errors import NoRouteError


class Strategy(Protocol):
    def candidates(self, node: PlanNode, context: dict[str, Any], healthy: Callable[[PlanNode], bool]
                   ) -> Sequence[PlanNode]:
        """Children to try, in order."""
        ...

    def goes_on(self, node: PlanNode, status: int, gateway_exception: bool) -> bool:
        """After a child answered ``status``: try the next candidate?"""
        ...


class SingleStrategy:
    def candidates(self, node: PlanNode, context: dict[str, Any], healthy: Callable[[PlanNode], bool]
                   ) -> Sequence[PlanNode]:
        return node.children[:1]

    def goes_on(self, node: PlanNode, status: int, gateway_exception: bool) -> bool:
        return False


class FallbackStrategy:
    """In order; go on after a failure (any non-2xx, or only ``on_status_codes``) unless the gateway itself broke."""

    def candidates(self, node: PlanNode, context: dict[str, Any], healthy: Callable[[PlanNode], bool]
                   ) -> Sequence[PlanNode]:
        return node.children

    def goes_on(self, node: PlanNode, status: int, gateway_exception: bool) -> bool:
        if gateway_exception:
            return False
        if node.on_status_codes is not None:
            return status in node.on_status_codes
        return not 200 <= status < 300


class LoadbalanceStrategy:
    """Weighted random choice among healthy children (all children when none is healthy). Stateless per request."""

    def __init__(self, rand: Callable[[], float] = random.random) -> None:
        self._rand = rand

    def candidates(self, node: PlanNode, context: dict[str, Any], healthy: Callable[[PlanNode], bool]
                   ) -> Sequence[PlanNode]:
        pool = [c for c in node.children if c.weight > 0 and healthy(c)] or [c for c in node.children if c.weight > 0]
        total = sum(c.weight for c in pool)
        point = self._rand() * total
        for child in pool:
            if point < child.weight:
                return [child]
            point -= child.weight
        return [pool[-1]]

    def goes_on(self, node: PlanNode, status: int, gateway_exception: bool) -> bool:
        return False


class ConditionalStrategy:
    """The first condition whose query holds names the target; else ``default``; else a 400."""

    def candidates(self, node: PlanNode, context: dict[str, Any], healthy: Callable[[PlanNode], bool]
                   ) -> Sequence[PlanNode]:
        by_name = {c.name: c for c in node.children if c.name}
        for query, then in node.conditions:
            if evaluate(query, context):
                return [by_name[then]]
        if node.default is not None:
            return [by_name[node.default]]
        raise NoRouteError("Query router did not resolve to any valid target")

    def goes_on(self, node: PlanNode, status: int, gateway_exception: bool) -> bool:
        return False


def default_strategies(rand: Callable[[], float] = random.random) -> dict[str, Strategy]:
    return {
        "single": SingleStrategy(),
        "fallback": FallbackStrategy(),
        "loadbalance": LoadbalanceStrategy(rand),
        "conditional": ConditionalStrategy(),
    }
