"""The conditional router's query language (Portkey's ``strategy.conditions[].query``).

Context: ``metadata.*`` (x-portkey-metadata), ``params.*`` (the request body), ``url.pathname``. A plain value means
equality; operators are ``$eq $ne $gt $gte $lt $lte`` (numeric, as parseFloat), ``$in $nin`` (arrays), ``$regex``,
and ``$and`` / ``$or`` over sub-queries. Every key of a query object must hold (Portkey 1.15.2 lets ``$regex``,
``$and`` and ``$or`` silently ignore their siblings — bug B14; we do not). Paths may be deeper than two levels.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

from core.errors import NoRouteError

_MISSING = object()


def _lookup(context: dict[str, Any], path: str) -> Any:
    value: Any = context
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return _MISSING
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool):
        return math.nan
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = re.match(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", value)
        return float(match.group(0)) if match else math.nan
    return math.nan


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise NoRouteError(f"Invalid $regex {pattern!r} in the conditional router: {exc}") from None


def _operator(op: str, value: Any, operand: Any) -> bool:
    if op == "$eq":
        return bool(value == operand)
    if op == "$ne":
        return bool(value != operand)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        left, right = _number(value), _number(operand)
        if math.isnan(left) or math.isnan(right):
            return False
        return {"$gt": left > right, "$gte": left >= right, "$lt": left < right, "$lte": left <= right}[op]
    if op in ("$in", "$nin"):
        if not isinstance(operand, list):
            raise NoRouteError(f"{op} needs an array in the conditional router")
        return (value in operand) == (op == "$in")
    if op == "$regex":
        if not isinstance(operand, str):
            raise NoRouteError("$regex needs a string pattern in the conditional router")
        return isinstance(value, str) and _regex(operand).search(value) is not None
    raise NoRouteError(f"Unknown operator {op!r} in the conditional router")


def _matches(value: Any, condition: Any) -> bool:
    if isinstance(condition, dict) and condition and all(str(k).startswith("$") for k in condition):
        return all(_operator(op, None if value is _MISSING else value, operand) for op, operand in condition.items())
    return value is not _MISSING and bool(value == condition)


def evaluate(query: Any, context: dict[str, Any]) -> bool:
    """Whether ``query`` holds in ``context``; an ill-formed query is a 400, never a silent miss."""
    if not isinstance(query, dict):
        raise NoRouteError("A conditional router query must be an object")
    for key, condition in query.items():
        if key in ("$and", "$or"):
            if not isinstance(condition, list):
                raise NoRouteError(f"{key} needs an array of queries in the conditional router")
            results = (evaluate(sub, context) for sub in condition)
            if not (all(results) if key == "$and" else any(results)):
                return False
        elif key.startswith("$"):
            raise NoRouteError(f"Unknown operator {key!r} in the conditional router")
        elif not _matches(_lookup(context, key), condition):
            return False
    return True
