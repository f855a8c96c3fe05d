"""GCP defaults, applied to the environment before core reads its settings (see :mod:`handlers.common.env`).

* Request logs: ``gs://$SKYRELAY_LOG_BUCKET/$SKYRELAY_LOG_PREFIX`` (prefix ``skyrelay``) when the deployment names
  a bucket and ``SKYRELAY_LOG_SINK`` is unset; with neither, ``stdout://`` (Cloud Logging).
* Replica id: the revision (``K_REVISION``, set by Cloud Run and Cloud Run functions) plus a random suffix — the
  platform exposes no instance id without a metadata call, and host name and pid repeat across instances.
* Spill folder under ``/tmp`` (in memory on Cloud Run; replayed by later requests of the same instance).

Identity needs nothing here: google-auth's Application Default Credentials use the service account of the
function or service (the metadata server), or GKE Workload Identity.
"""

from __future__ import annotations

from handlers.common.env import (
    LOG_BUCKET,
    NO_BUCKET_SINK,
    Environ,
    bucket_sink_url,
    log_prefix,
    random_suffix,
    replica_name,
    set_default,
    temporary_dir,
)


def _shared(environ: Environ, applied: dict[str, str]) -> None:
    bucket = environ.get(LOG_BUCKET)
    sink = bucket_sink_url("gs", bucket, log_prefix(environ)) if bucket else NO_BUCKET_SINK
    set_default(environ, "SKYRELAY_LOG_SINK", sink, applied)
    if environ.get("K_REVISION"):
        set_default(environ, "SKYRELAY_REPLICA_ID", replica_name(environ["K_REVISION"], random_suffix()), applied)
    set_default(environ, "SKYRELAY_LOG_SPILL_DIR", temporary_dir(environ, "skyrelay-spill"), applied)


def apply_function_defaults(environ: Environ) -> dict[str, str]:
    """For ``handlers/gcp/main.py`` (Cloud Run functions); returns what was set."""
    applied: dict[str, str] = {}
    _shared(environ, applied)
    return applied


def apply_container_defaults(environ: Environ) -> dict[str, str]:
    """For ``handlers/gcp/server.py`` (Cloud Run services, GKE: there the pod name is the host name)."""
    applied: dict[str, str] = {}
    _shared(environ, applied)
    return applied
