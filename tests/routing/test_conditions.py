from __future__ import annotations

from typing import Any

import pytest

from core.config.conditions import evaluate
from core.errors import NoRouteError

CONTEXT: dict[str, Any] = {"metadata": {"tier": "pro", "score": "7.5", "env": {"region": "eu"}},
                           "params": {"model": "mini-1", "max_tokens": 100, "stream": True},
                           "url": {"pathname": "/v1/chat/completions"}}


@pytest.mark.parametrize(("query", "expected"), [
    ({"metadata.tier": "pro"}, True),
    ({"metadata.tier": "free"}, False),
    ({"metadata.missing": "x"}, False),
    ({"metadata.tier": {"$eq": "pro"}}, True),
    ({"metadata.tier": {"$ne": "pro"}}, False),
    ({"metadata.score": {"$gt": 7}}, True),
    ({"metadata.score": {"$gte": "7.5"}}, True),
    ({"params.max_tokens": {"$lt": 100}}, False),
    ({"params.max_tokens": {"$lte": 100}}, True),
    ({"params.model": {"$gt": 1}}, False),
    ({"params.model": {"$in": ["mini-1", "mini-2"]}}, True),
    ({"params.model": {"$nin": ["mini-1"]}}, False),
    ({"params.model": {"$regex": "^mini"}}, True),
    ({"url.pathname": {"$regex": "embeddings$"}}, False),
    ({"metadata.env.region": "eu"}, True),
    ({"$and": [{"metadata.tier": "pro"}, {"params.stream": True}]}, True),
    ({"$and": [{"metadata.tier": "pro"}, {"params.stream": False}]}, False),
    ({"$or": [{"metadata.tier": "free"}, {"params.model": {"$regex": "^mini"}}]}, True),
    ({"$or": [{"metadata.tier": "free"}], "metadata.tier": "pro"}, False),  # siblings count (Portkey bug B14)
    ({"params.model": {"$regex": "^mini", "$ne": "mini-1"}}, False),
    ({"params.max_tokens": {"$gt": 10, "$lt": 1000}}, True),
])
def test_queries(query: dict[str, Any], expected: bool) -> None:
    assert evaluate(query, CONTEXT) is expected


@pytest.mark.parametrize("query", [
    {"metadata.tier": {"$like": "p%"}},
    {"$xor": []},
    {"$and": {"metadata.tier": "pro"}},
    {"params.model": {"$in": "mini-1"}},
    {"params.model": {"$regex": "("}},
])
def test_ill_formed_queries_are_400(query: dict[str, Any]) -> None:
    with pytest.raises(NoRouteError) as caught:
        evaluate(query, CONTEXT)
    assert caught.value.status == 400
