"""Authentic Lambda HTTP events (``tests/fixtures/events``) with the request of a test filled in, the way each
trigger carries it: REST/ALB ``headers`` and ``multiValueHeaders``, payload 2.0 ``rawPath`` and ``cookies``,
optional base64 bodies. Like ``sam local generate-event``, but from fixtures that keep every field AWS sends.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).resolve().parents[1] / "fixtures" / "events"

#: The HTTP triggers the buffered handler serves, by fixture name.
HTTP_FIXTURES = ["apigw_rest_proxy", "apigw_http_v1", "apigw_http_v2", "alb", "alb_multi_value", "function_url"]


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text())


def http_event(name: str, method: str, path: str, headers: dict[str, str] | None = None,
               body: bytes | dict[str, Any] | None = None, *, base64_body: bool | None = None,
               query: dict[str, str] | None = None) -> dict[str, Any]:
    """The fixture ``name`` carrying this request. ``base64_body`` defaults to what the fixture uses."""
    event = copy.deepcopy(load(name))
    raw = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
    encode = event.get("isBase64Encoded", False) if base64_body is None else base64_body
    event["body"] = (base64.b64encode(raw).decode() if encode else raw.decode()) if raw else None
    event["isBase64Encoded"] = bool(encode and raw)
    extra = {k.lower(): v for k, v in (headers or {}).items()}
    if raw:
        extra["content-length"] = str(len(raw))
    version = event.get("version")
    if version == "2.0":
        event["rawPath"] = path
        event["requestContext"]["http"].update(method=method, path=path)
        event["headers"] = {**{k: v for k, v in event["headers"].items() if k.lower() not in extra}, **extra}
        event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in (query or {}).items())
        event["queryStringParameters"] = dict(query) if query else None
        if not raw:
            event["headers"].pop("content-length", None)
        return event
    event["httpMethod"] = method
    event["path"] = path
    if "resource" in event:  # API Gateway REST / HTTP API 1.0
        event["requestContext"]["httpMethod"] = method
        event["requestContext"]["path"] = path
        if event.get("pathParameters") is not None:
            event["pathParameters"] = {"proxy": path.lstrip("/")}
        else:
            event["resource"] = event["requestContext"]["resourcePath"] = path
    for field in ("headers", "multiValueHeaders"):
        if field not in event:
            continue
        kept = {k: v for k, v in event[field].items() if k.lower() not in extra and
                not (k.lower() == "content-length" and not raw)}
        added = {k: [v] for k, v in extra.items()} if field == "multiValueHeaders" else extra
        event[field] = {**kept, **added}
    if "multiValueQueryStringParameters" in event:
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in (query or {}).items()} or (
            {} if "elb" in event["requestContext"] else None)
    if "queryStringParameters" in event:
        event["queryStringParameters"] = dict(query or {}) or ({} if "elb" in event["requestContext"] else None)
    return event


def decoded_body(result: dict[str, Any]) -> bytes:
    """The body of a proxy-integration result (base64 when the handler said so)."""
    body = result.get("body") or ""
    return base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()


def result_headers(result: dict[str, Any]) -> dict[str, list[str]]:
    """Every response header of a proxy result, lower-cased, whichever of the two fields carries it."""
    out: dict[str, list[str]] = {}
    for name, value in (result.get("headers") or {}).items():
        out.setdefault(name.lower(), []).append(value)
    for name, values in (result.get("multiValueHeaders") or {}).items():
        out.setdefault(name.lower(), []).extend(v for v in values if v not in out.get(name.lower(), []))
    if result.get("cookies"):
        out["set-cookie"] = list(result["cookies"])
    return out
