"""Error mapping: Azure's error bodies → the provider error shape, keeping Azure's content-filter verdict.

A prompt refused by the content filter is a 400 with ``code: content_filter`` and an ``innererror`` naming the
categories that fired; clients written for Azure read that, so it is kept next to OpenAI's four error fields.
"""

from __future__ import annotations

from typing import Any

import orjson

from core.providers.base import provider_error_body
from core.providers.http import error_message_from


def _innererror(raw: bytes) -> Any:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    return error.get("innererror") if isinstance(error, dict) else None


def azure_error_body(provider: str, raw: bytes) -> bytes:
    message, error_type, param, code = error_message_from(raw)
    body = provider_error_body(provider, message, error_type=error_type, param=param, code=code)
    inner = _innererror(raw)
    if inner is None:
        return body
    data = orjson.loads(body)
    data["error"]["innererror"] = inner
    return orjson.dumps(data)
