"""Issue #12's targets for one gateway, each computed from this run's numbers only, with PASS/FAIL.

Kept apart from the report because the JSON output stores the same checks the printed table shows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from phases import MEMORY_CHECKPOINTS, memory_slope
from targets import DIRECT, FLOOR, PORTKEY


@dataclass(frozen=True)
class Check:
    """One target for one gateway: the goal, this run's value and whether it is met (None: not measured)."""

    label: str
    goal: str
    value: str
    passed: bool | None


def _check(label: str, goal: str, value: float | None, ok: Callable[[float], bool],
           fmt: Callable[[float], str]) -> Check:
    if value is None:
        return Check(label, goal, "-", None)
    return Check(label, goal, fmt(value), ok(value))


def _at(entry: dict[str, Any], *keys: str) -> float | None:
    """A nested number, or None when that part was not measured."""
    value: Any = entry
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return float(value) if isinstance(value, int | float) else None


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _sub(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None


def _times(value: float) -> str:
    return f"{value:.2f}x"


def _signed_ms(value: float) -> str:
    return f"{value:+.2f} ms"


def _mib(value: float) -> str:
    return f"{value:.1f} MiB"


def gateway_checks(results: dict[str, Any], name: str) -> list[Check]:
    """Issue #12's targets for one gateway, from this run's numbers only."""
    targets = results["targets"]
    gw, floor, direct, portkey = (targets.get(key, {}) for key in (name, FLOOR, DIRECT, PORTKEY))
    rps = _at(gw, "at16", "rps")
    points = gw.get("memory", [])
    first = points[0] if points and points[0]["reached"] else {}
    scaling = results.get("scaling") or {}
    two_workers = scaling.get("ratio") if f"gateway ({scaling.get('transport')})" == name else None
    return [
        _check("req/s at 16 connections, one worker", ">= 3,500", rps, lambda v: v >= 3500, lambda v: f"{v:,.0f}"),
        _check("  ... vs the floor's", ">= 0.5x", _div(rps, _at(floor, "at16", "rps")), lambda v: v >= 0.5, _times),
        _check("  ... vs Portkey's", ">= 3.5x", _div(rps, _at(portkey, "at16", "rps")), lambda v: v >= 3.5, _times),
        _check("added p50 at 1 connection", "<= 0.50 ms",
               _div(_sub(_at(gw, "at1", "p50_us"), _at(direct, "at1", "p50_us")), 1000), lambda v: v <= 0.5,
               _signed_ms),
        _check("p99 at 16 connections vs the floor's", "<= 2x",
               _div(_at(gw, "at16", "p99_us"), _at(floor, "at16", "p99_us")), lambda v: v <= 2, _times),
        _check("stream TTFB p50 vs the floor's", "<= +1.00 ms",
               _div(_sub(_at(gw, "streaming", "ttfb_p50_us"), _at(floor, "streaming", "ttfb_p50_us")), 1000),
               lambda v: v <= 1, _signed_ms),
        _check("RSS idle (worker + log writer's own pages)",
               "<= 70 MiB", _at(gw, "rss_idle_mb"), lambda v: v <= 70, _mib),
        _check(f"RSS after >= {MEMORY_CHECKPOINTS[0]:,} requests", "<= 120 MiB", _at(first, "rss_mb"),
               lambda v: v <= 120, _mib),
        _check("  ... flat after that (growth per 10k req)", "<= 1 MiB", memory_slope(points), lambda v: v <= 1,
               lambda v: f"{v:+.2f} MiB"),
        _check("2 workers vs 1 (both unpinned)", ">= 1.7x", two_workers, lambda v: v >= 1.7, _times),
    ]
