"""The canonical cache key of a request at one target.

Two requests share an entry only when the same tenant asks the same target (provider, host, virtual key, region)
the same thing: the body after ``override_params``, with object keys sorted. ``stream`` and ``stream_options`` are
left out — a streamed answer is stored assembled and replayed either way. ``user`` stays in: answers are not
shared across end users.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from core.config.target import Target
from core.providers.base import Operation

_IGNORED_FIELDS = frozenset({"stream", "stream_options"})
_LOCATION_OPTIONS = ("aws_region", "vertex_region", "vertex_project_id", "resource_name", "deployment_id",
                     "api_version")


def cache_key(namespace: str, target: Target, operation: Operation, body: dict[str, Any]) -> str:
    material = {
        "op": operation.method,
        "provider": target.provider,
        "host": target.custom_host,
        "vk": target.virtual_key,
        "gw": target.gateway,
        "where": [target.options.get(name) for name in _LOCATION_OPTIONS],
        "body": {k: v for k, v in body.items() if k not in _IGNORED_FIELDS},
    }
    digest = hashlib.sha256(orjson.dumps(material, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()
    return f"skyrelay:cache:{{{namespace}}}:{digest}"
