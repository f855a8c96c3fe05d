"""AWS defaults, applied to the environment before core reads its settings (see :mod:`handlers.common.env`).

* Request logs: ``s3://$SKYRELAY_LOG_BUCKET/$SKYRELAY_LOG_PREFIX`` (prefix ``skyrelay``) when the deployment names
  a bucket and ``SKYRELAY_LOG_SINK`` is unset; with neither, ``stdout://`` — CloudWatch Logs on Lambda (its
  working folder is read-only), the node's log agent on EKS.
* Lambda: the spill folder under ``/tmp`` (the only writable path) and the replica id from the runtime's log stream
  name (one per execution environment), so object names say which instance wrote them.
* Region: botocore reads ``AWS_DEFAULT_REGION``, not ``AWS_REGION``; copy it when only the latter is set.

Identity needs nothing here: botocore's default chain finds Lambda's role (environment keys), IRSA (web identity)
and EKS Pod Identity (container credentials) by itself.
"""

from __future__ import annotations

from handlers.common.env import (
    LOG_BUCKET,
    NO_BUCKET_SINK,
    Environ,
    bucket_sink_url,
    log_prefix,
    replica_name,
    set_default,
    temporary_dir,
)


def _shared(environ: Environ, applied: dict[str, str]) -> None:
    bucket = environ.get(LOG_BUCKET)
    sink = bucket_sink_url("s3", bucket, log_prefix(environ)) if bucket else NO_BUCKET_SINK
    set_default(environ, "SKYRELAY_LOG_SINK", sink, applied)
    if environ.get("AWS_REGION"):
        set_default(environ, "AWS_DEFAULT_REGION", environ["AWS_REGION"], applied)


def lambda_replica_id(environ: Environ) -> str:
    """``<function>-<instance>`` from ``AWS_LAMBDA_LOG_STREAM_NAME`` (``2026/11/27/[$LATEST]<32 hex>``)."""
    stream = environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
    instance = stream.rpartition("]")[2] or stream.rpartition("/")[2]
    return replica_name(environ.get("AWS_LAMBDA_FUNCTION_NAME"), instance[:12] or None)


def apply_lambda_defaults(environ: Environ) -> dict[str, str]:
    """For ``handlers/aws/handler.py`` and the streaming runtime; returns what was set."""
    applied: dict[str, str] = {}
    _shared(environ, applied)
    set_default(environ, "SKYRELAY_LOG_SPILL_DIR", temporary_dir(environ, "skyrelay-spill"), applied)
    set_default(environ, "SKYRELAY_REPLICA_ID", lambda_replica_id(environ), applied)
    return applied


def apply_container_defaults(environ: Environ) -> dict[str, str]:
    """For ``handlers/aws/server.py`` (EKS, ECS): the pod name already is the host name core uses as replica id."""
    applied: dict[str, str] = {}
    _shared(environ, applied)
    return applied
