"""The request lifecycle as plain async code, independent of any web framework.

Every entry point (the ASGI app, and through it Lambda, functions-framework and Azure Functions) hands an
:class:`IncomingCall` to :meth:`GatewayService.handle` and renders the :class:`GatewayResponse` it gets back:

    authenticate → parse → plan → route (strategies, retries, breaker, attempts) → respond → record

Exactly one log record is submitted per call: for buffered answers before ``handle`` returns, for streams when the
stream ends — normally, with an error, or because the client went away.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import orjson

from core.api.openai import parse_request_body
from core.api.sse import encode_data
from core.api.stream_assembly import assemble_stream
from core.cache.response_cache import MISS, REFRESH, ResponseCache
from core.config import headers as h
from core.config.plan import Planner
from core.config.store import ConfigStore
from core.config.target import Target
from core.errors import GatewayInternalError, SkyrelayError
from core.providers.base import Operation, ProviderResult
from core.ratelimit.base import RateLimiter, Reservation, limited_error
from core.ratelimit.tokens import estimate_tokens, usage_tokens
from core.routing.attempt import CallContext
from core.routing.executor import Executor, Outcome, RunStats
from core.telemetry.records import RequestLog
from core.telemetry.records import new_record_id as new_trace_id
from core.telemetry.redaction import is_secret_field, scrub, secret_values
from core.telemetry.writer import LogWriter

logger = logging.getLogger("skyrelay")


@dataclass(slots=True)
class IncomingCall:
    operation: Operation
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes = b""
    query: str = ""


@dataclass(slots=True)
class GatewayResponse:
    """A rendered answer: ``body`` for buffered responses, ``chunks`` for streams (never both)."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | None = None
    chunks: AsyncIterator[bytes] | None = None
    media_type: str = "application/json"


def error_response(error: SkyrelayError, extra_headers: list[tuple[str, str]] | None = None) -> GatewayResponse:
    headers = list(error.headers.items())
    if error.gateway_exception:
        headers.append(("x-portkey-gateway-exception", "true"))
    if extra_headers:
        headers.extend(extra_headers)
    return GatewayResponse(status=error.status, headers=headers, body=orjson.dumps(error.body()))


class GatewayService:
    def __init__(self, *, store: ConfigStore, planner: Planner, executor: Executor, pipeline: LogWriter,
                 limiter: RateLimiter, cache: ResponseCache | None = None) -> None:
        self.store = store
        self.planner = planner
        self.executor = executor
        self.pipeline = pipeline
        self.limiter = limiter
        self.cache = cache
        self._tasks: set[asyncio.Task[None]] = set()

    async def handle(self, call: IncomingCall) -> GatewayResponse:
        headers = call.headers
        log = RequestLog(
            method=call.method,
            route=call.path,
            trace_id=headers.get("x-portkey-trace-id") or new_trace_id(),
            request_headers=dict(headers),
            operation=call.operation.method,
        )
        trace_header = [("x-portkey-trace-id", log.trace_id)]
        try:
            if "x-portkey-trace-id" in headers:
                h.check_trace_id(headers["x-portkey-trace-id"])
            key = self.store.snapshot.keys.authenticate(headers.get("x-portkey-api-key"))
            log.gateway_key_id = key.id if key else None
            log.metadata = h.metadata(headers.get("x-portkey-metadata"))
            body = parse_request_body(call.operation, call.body) if call.operation is not Operation.MODELS else {}
            # Logged as the bytes the caller sent (a JSON object, just parsed): cheaper to hand to the log writer than
            # the dict, and what the caller sent even if something downstream were to change the dict.
            log.request_body = call.body or body
            log.stream = body.get("stream") is True
            reservations = []
            if key is not None and key.limits.active:
                decision, reservation = await self.limiter.acquire(f"key:{key.id}", key.limits, estimate_tokens(body))
                if not decision.allowed:
                    raise limited_error(f"gateway key {key.id!r}", decision, key.limits)
                if reservation is not None:
                    reservations.append(reservation)
            plan = self.planner.plan(headers, body, key)
            log.extra["config_id"] = plan.config_id
            ctx = CallContext(
                operation=call.operation,
                body=body,
                raw_body=call.body or None,
                client_headers=headers,
                trace_id=log.trace_id,
                query=call.query,
                metadata=log.metadata,
                path=call.path,
                cache_namespace=_cache_namespace(key.id if key else "public", headers),
                cache_force_refresh=headers.get("x-portkey-cache-force-refresh", "").lower() == "true",
                reservations=reservations,
            )
            stats = RunStats()
            outcome = await self.executor.execute(plan, ctx, stats)
            log.attempts, log.retry_attempts = stats.attempts, stats.retries
            log.extra["fallbacks"] = stats.fallbacks
            return self._respond(outcome, log, body.get("model"), ctx.reservations)
        except SkyrelayError as error:
            return self._fail(log, error, trace_header)
        except Exception:
            logger.exception("unhandled error in trace %s", log.trace_id)
            return self._fail(log, GatewayInternalError("Something went wrong inside the gateway"), trace_header)

    def reject(self, method: str, path: str, headers: Mapping[str, str], error: SkyrelayError) -> GatewayResponse:
        """An error found before the body could be handed over (size limit, content type); still recorded."""
        log = RequestLog(method=method, route=path, trace_id=headers.get("x-portkey-trace-id") or new_trace_id(),
                         request_headers=dict(headers))
        return self._fail(log, error, [("x-portkey-trace-id", log.trace_id)])

    def _respond(self, outcome: Outcome, log: RequestLog, requested_model: object,
                 reservations: list[Reservation]) -> GatewayResponse:
        target = outcome.node.target
        assert target is not None
        log.provider, log.target_path, log.virtual_key = target.provider, target.path, target.virtual_key
        log.cache_status = outcome.cache_status
        if target.gateway is not None:
            log.extra["remote_gateway"] = target.gateway
        if outcome.result is not None and outcome.result.annotations:
            log.extra.update(outcome.result.annotations)
        log.model = str(target.override_params.get("model") or requested_model or "") or None
        portkey_headers = [
            ("x-portkey-provider", target.provider),
            ("x-portkey-trace-id", log.trace_id),
            ("x-portkey-retry-attempt-count", str(outcome.retry_count)),
            ("x-portkey-last-used-option-index", target.path),
            ("x-portkey-cache-status", log.cache_status),
        ]
        if outcome.error is not None:
            self._settle_later(reservations, None)
            return self._fail(log, outcome.error, portkey_headers)
        result = outcome.result
        assert result is not None
        headers = [*result.headers, *portkey_headers]
        if result.chunks is None:
            if not result.ok and result.body:
                result.body = _scrub_credentials(result.body, log.request_headers, target)
            log.response_body = result.body
            if reservations:
                self._settle_later(reservations, _json_or_none(result.body))
            log.finish(result.status, "ok" if result.ok else "upstream_error")
            self.pipeline.submit(log)
            return GatewayResponse(result.status, headers, body=result.body or b"", media_type=result.media_type)
        return GatewayResponse(result.status, headers, media_type=result.media_type,
                               chunks=self._relay(result, log, outcome, reservations))

    async def _relay(self, result: ProviderResult, log: RequestLog, outcome: Outcome,
                     reservations: list[Reservation]) -> AsyncIterator[bytes]:
        """Forward each chunk as it arrives; record (and cache, and settle) the stream's end however it comes."""
        assert result.chunks is not None
        ending = "client_disconnected"
        try:
            async for chunk in result.chunks:
                log.capture_chunk(chunk)
                yield chunk
            ending = "ok"
        except SkyrelayError as error:
            ending = "stream_error"
            log.error = error.body()["error"]
            yield encode_data(error.body())
        finally:
            await result.aclose()
            log.finish(result.status, ending)
            self._after_stream(log, outcome, reservations, complete=ending == "ok")
            self.pipeline.submit(log)

    def _after_stream(self, log: RequestLog, outcome: Outcome, reservations: list[Reservation],
                      complete: bool) -> None:
        wants_cache = complete and outcome.cache is not None and outcome.cache_status in (MISS, REFRESH)
        if not (wants_cache or reservations) or log.stream_chunks is None:
            self._settle_later(reservations, None)
            return
        assembled = None if log.stream_truncated else assemble_stream(log.stream_chunks)
        log.response_json = assembled
        if wants_cache and assembled is not None and self.cache is not None and outcome.cache is not None:
            self.cache.store_later(outcome.cache, log.provider or "", assembled)
        self._settle_later(reservations, assembled)

    def _settle_later(self, reservations: list[Reservation], response: object) -> None:
        """Replace reserved token estimates by the real usage (the estimate stands when usage is unknown)."""
        if not reservations:
            return
        actual = usage_tokens(response)
        if actual is None:
            return
        task = asyncio.get_running_loop().create_task(self._settle(reservations, actual))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle(self, reservations: list[Reservation], actual: int) -> None:
        for reservation in reservations:
            await self.limiter.settle(reservation, actual)

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _fail(self, log: RequestLog, error: SkyrelayError, headers: list[tuple[str, str]]) -> GatewayResponse:
        log.error = error.body()["error"]
        log.finish(error.status, "gateway_error" if error.status >= 500 else "rejected")
        self.pipeline.submit(log)
        return error_response(error, headers)


def _cache_namespace(key_id: str, headers: Mapping[str, str]) -> str:
    """Entries are per gateway key; ``x-portkey-cache-namespace`` partitions a key's entries further."""
    extra = headers.get("x-portkey-cache-namespace")
    return f"{key_id}/{extra}" if extra else key_id


def _json_or_none(body: bytes | None) -> object:
    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _scrub_credentials(body: bytes, headers: Mapping[str, str], target: Target) -> bytes:
    """A provider may echo the credential back ("Incorrect API key provided: sk-..."); never relay it.

    Covers the caller's own credentials and those the gateway injected from a saved config or virtual key, which
    the caller must never see.
    """
    secrets = [*secret_values(headers)]
    if target.api_key:
        secrets.append(target.api_key.encode())
    secrets.extend(str(v).encode() for k, v in target.options.items() if v and is_secret_field(k))
    return scrub(body, [s for s in secrets if len(s) >= 8])
