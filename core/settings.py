"""Gateway settings, read once at start from ``SKYRELAY_*`` environment variables (or a ``.env`` file).

Nothing else in core reads the environment for its own configuration: a composition function
(:func:`core.gateway.build_gateway`) turns a :class:`Settings` into the gateway's parts and passes them in.

Keyword arguments win over the environment, which wins over ``.env`` in the working folder, which wins over the
defaults; variable names match in any case (``skyrelay_port`` too). Lists are comma-separated (``a,b``) or JSON
(``["a", "b"]``). The environment is read by :func:`environment_values` rather than pydantic-settings, whose import
loads every source it has (argparse for its CLI, dotenv, cloud secret stores) to use one: about 5% of the Lambda
handler's import.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

ENV_PREFIX = "skyrelay_"
ENV_FILE = ".env"

#: A list setting: comma-separated or JSON in the environment (see ``_split_commas``).
CommaList = list[str]


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


class Settings(BaseModel):
    """Every knob of the gateway; each is also ``SKYRELAY_<NAME>`` in the environment."""

    model_config = ConfigDict(extra="ignore", validate_default=True)

    def __init__(self, **values: Any) -> None:
        super().__init__(**{**environment_values(os.environ, ENV_FILE), **values})

    # --- serving -------------------------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address `skyrelay serve` binds.")
    port: int = Field(8787, ge=0, le=65535, description="Port `skyrelay serve` binds.")
    workers: int = Field(1, ge=1, description="Worker processes for `skyrelay serve`.")
    allow_unauthenticated: bool = Field(
        False, description="Allow binding a non-loopback address with no gateway API keys configured."
    )
    shutdown_grace_s: float = Field(
        20.0, gt=0, description="On SIGTERM, how long in-flight requests may finish before logs are flushed."
    )
    http_protocol: Literal["skyrelay", "httptools", "h11"] = Field(
        "skyrelay", description="HTTP/1.1 connection handling under `skyrelay serve`: the gateway's own "
        "(`core.server`, the fastest), or uvicorn's `httptools` or `h11` protocol."
    )
    timeout_keep_alive_s: int = Field(
        5, ge=1, description="How long `skyrelay serve` keeps an idle client connection open; set it above the "
        "idle timeout of any load balancer in front (AWS ALB: 60 s) so the balancer closes first."
    )
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="Largest accepted request body.")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Server log verbosity.")
    cors_origins: CommaList = Field(default_factory=list, description="Origins allowed by CORS; empty = off.")

    # --- config store and gateway keys ---------------------------------------------------------------------
    config: str | None = Field(
        None,
        description="Config store: a YAML/JSON file, s3://, gs://, an Azure Blob URL or an https:// control-plane URL.",
    )
    config_poll_interval_s: float = Field(
        30.0, ge=0, description="How often the config store source is checked for a new version (0 = never)."
    )
    gateway_key_hashes: CommaList = Field(
        default_factory=list,
        description="SHA-256 hex digests of gateway API keys (`skyrelay keys hash`), besides those in the config.",
    )

    # --- upstream HTTP -------------------------------------------------------------------------------------
    upstream_transport: Literal["http1", "aiohttp", "httpx"] = Field(
        "http1", description="Client used for provider calls: `http1` (our keep-alive HTTP/1.1 client, measured "
        "fastest in bench/), `aiohttp` or `httpx`."
    )
    upstream_connect_timeout_s: float = Field(10.0, gt=0, description="TCP+TLS connect timeout to providers.")
    upstream_read_timeout_s: float = Field(
        600.0, gt=0, description="Longest silence between bytes from a provider before the call fails."
    )
    upstream_max_connections: int = Field(1000, ge=1, description="Pooled connections across all providers.")
    ssrf_allow: CommaList = Field(
        default_factory=lambda: ["localhost", "127.0.0.0/8", "::1"],
        description="Hosts and CIDRs a custom host may resolve to even though they are private or loopback.",
    )

    # --- shared state (Redis) -------------------------------------------------------------------------------
    redis_url: str | None = Field(
        None, description="redis:// or rediss:// (TLS) URL shared by every replica; unset = in-memory state."
    )
    redis_cluster: bool = Field(False, description="Use the Redis Cluster client.")
    redis_password: str | None = Field(None, description="Redis AUTH password when it is not in the URL.")
    redis_timeout_ms: float = Field(50.0, gt=0, description="Per-command Redis timeout; slower counts as down.")
    redis_retry_interval_s: float = Field(1.0, gt=0, description="After a Redis failure, local state for this long.")
    cache_default_ttl_s: float = Field(3600.0, gt=0, description="Cache TTL when a config's cache has no max_age.")
    cache_max_entry_bytes: int = Field(1024 * 1024, ge=1024, description="Larger answers are not cached.")
    cache_memory_max_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="In-memory cache size (no Redis).")
    ratelimit_fail_open: bool = Field(
        True, description="When Redis is down, admit requests (true) or refuse them with 503 (false)."
    )

    # --- edge routing (Skyrelay in front of Skyrelay) ---------------------------------------------------------
    provider_affinity: CommaList = Field(
        default_factory=list,
        description="provider=remote-gateway pairs (bedrock=aws-us-east-1,...): forward each provider's requests.",
    )
    max_hops: int = Field(1, ge=0, description="Gateway hops a request may already have made and still be forwarded.")
    remote_health_interval_s: float = Field(10.0, ge=0, description="How often remote gateways' health is polled.")
    remote_unhealthy_after: int = Field(3, ge=1, description="Failed health checks in a row before a remote is out.")

    # --- routing --------------------------------------------------------------------------------------------
    breaker_enabled: bool = Field(True, description="Open a target's circuit when it keeps failing.")
    breaker_failure_threshold: int = Field(5, ge=1, description="Consecutive failures that open a circuit.")
    breaker_error_rate: float = Field(
        0.5, gt=0, le=1, description="Failure ratio over the window that opens a circuit (with enough calls)."
    )
    breaker_min_calls: int = Field(20, ge=1, description="Calls in the window before the error rate counts.")
    breaker_window_s: float = Field(60.0, gt=0, description="The error-rate window.")
    breaker_cooldown_s: float = Field(30.0, gt=0, description="How long an open circuit waits before one probe.")

    # --- request logs --------------------------------------------------------------------------------------
    log_sink: str = Field(
        "file://./logs",
        description="Where request logs go: file://DIR, stdout://, s3://BUCKET/PREFIX, gs://BUCKET/PREFIX or "
        "https://ACCOUNT.blob.core.windows.net/CONTAINER/PREFIX.",
    )
    log_s3_kms_key_id: str | None = Field(
        None, description="KMS key id or ARN for SSE-KMS on S3 log objects; unset = the bucket's default encryption."
    )
    log_writer: Literal["auto", "inline", "process"] = Field(
        "auto",
        description="Who builds and stores request logs: `process` = a log writer process beside each worker (the "
        "worker only hands records over; its core serves requests), `inline` = the worker itself, `auto` = "
        "`process` for `skyrelay serve` and the container entries, `inline` for serverless entries.",
    )
    log_handoff_interval_s: float = Field(
        0.05, gt=0, le=10,
        description="Longest a request log waits before the writer takes it (to build it, or to send it to the "
        "log writer process); a batch of 64 goes at once.",
    )
    log_bodies: bool = Field(True, description="Keep request and response bodies in log records.")
    log_redact_body_fields: CommaList = Field(
        default_factory=list, description="Body fields (top level, any depth) replaced by [REDACTED] in records."
    )
    log_queue_max_records: int = Field(
        10_000, ge=1, description="Records waiting for the sink; past it new records are dropped, counted and logged."
    )
    log_batch_max_records: int = Field(500, ge=1, description="A batch is written at this many records...")
    log_batch_max_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="...or at this many bytes...")
    log_batch_max_age_s: float = Field(1.0, gt=0, description="...or when its oldest record is this old.")
    log_flush_timeout_s: float = Field(10.0, gt=0, description="Deadline for the final flush at shutdown.")
    log_write_attempts: int = Field(3, ge=1, description="Tries per batch (with backoff) before it is spilled to disk.")
    log_write_timeout_s: float = Field(30.0, gt=0, description="Longest one write to the sink may take.")
    log_spill_dir: str = Field(
        default_factory=lambda: os.path.join(os.environ.get("TMPDIR", "/tmp"), "skyrelay-spill"),
        description="Local folder for batches the sink could not take; replayed in order when it recovers.",
    )
    log_spill_max_bytes: int = Field(
        256 * 1024 * 1024, ge=0, description="Cap on the spill folder (0 = no spill: batches wait in memory)."
    )
    log_replay_interval_s: float = Field(
        5.0, gt=0, description="Longest wait between attempts to replay the spill into a failing sink."
    )

    # --- metrics, traces, analytics ------------------------------------------------------------------------
    metrics_enabled: bool = Field(True, description="Serve Prometheus metrics at GET /metrics.")
    metrics_max_models: int = Field(
        500, ge=1, description="Distinct model label values in metrics; later ones are counted as `other`."
    )
    otel_enabled: bool = Field(
        False, description="Export GenAI spans and metrics over OTLP/HTTP, configured by the OTEL_EXPORTER_OTLP_* "
        "variables (needs the [otel] extra)."
    )
    analytics_url: str | None = Field(
        None, description="Control-plane URL that receives batches of per-request summaries (no bodies)."
    )
    analytics_token: SecretStr | None = Field(None, description="Bearer token sent with analytics batches.")
    analytics_interval_s: float = Field(10.0, gt=0, description="How often analytics batches are sent.")
    analytics_batch_max_records: int = Field(500, ge=1, description="Summaries per analytics batch.")
    replica_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}",
        description="Names this process in log object keys and metrics.",
    )

    _split = field_validator("cors_origins", "gateway_key_hashes", "ssrf_allow", "log_redact_body_fields",
                             "provider_affinity", mode="before")(_split_commas)

    @field_validator("provider_affinity")
    @classmethod
    def _pairs(cls, value: list[str]) -> list[str]:
        for pair in value:
            provider, _, gateway = pair.partition("=")
            if not provider.strip() or not gateway.strip():
                raise ValueError(f"provider_affinity entries are provider=gateway pairs, got {pair!r}")
        return value

    def affinity(self) -> dict[str, str]:
        return {p.strip(): g.strip() for p, _, g in (pair.partition("=") for pair in self.provider_affinity)}

    @field_validator("gateway_key_hashes")
    @classmethod
    def _hex_digests(cls, value: list[str]) -> list[str]:
        for digest in value:
            if len(digest) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digest):
                raise ValueError("gateway key hashes must be SHA-256 hex digests (use `skyrelay keys hash`)")
        return [d.lower() for d in value]


def environment_values(environ: Mapping[str, str], env_file: str | None = None) -> dict[str, str]:
    """The ``SKYRELAY_<NAME>`` variables of :class:`Settings` fields, by field name: those of ``environ`` over those
    of ``env_file`` (when it exists; python-dotenv is imported only then)."""
    values: dict[str, str] = {}
    if env_file and os.path.isfile(env_file):
        from dotenv import dotenv_values

        values.update(_settings_variables(dotenv_values(env_file, encoding="utf-8")))
    values.update(_settings_variables(environ))
    return values


def _settings_variables(variables: Mapping[str, str | None]) -> dict[str, str]:
    fields = Settings.model_fields
    found: dict[str, str] = {}
    for name, value in variables.items():
        key = name.lower()
        if value is not None and key.startswith(ENV_PREFIX) and key[len(ENV_PREFIX):] in fields:
            found[key[len(ENV_PREFIX):]] = value
    return found
