"""Environment defaults shared by the cloud entries, applied before core reads its settings.

Core reads ``SKYRELAY_*`` once (:class:`core.settings.Settings`); a handler only fills in what the user left unset,
from what its platform already provides (a bucket variable set by the deployment, the runtime's instance name,
its writable temporary folder). A value the user set — even to something the handler would not choose — wins.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import MutableMapping

Environ = MutableMapping[str, str]

#: Bucket (S3, GCS) that receives request logs when ``SKYRELAY_LOG_SINK`` is not set.
LOG_BUCKET = "SKYRELAY_LOG_BUCKET"
#: Object-name prefix inside that bucket or container.
LOG_PREFIX = "SKYRELAY_LOG_PREFIX"
DEFAULT_LOG_PREFIX = "skyrelay"
#: Where logs go when no bucket is named: the platform's own log stream (CloudWatch, Cloud Logging, App Insights)
#: rather than a local folder that is read-only (Lambda) or lost with the instance (every serverless platform).
NO_BUCKET_SINK = "stdout://"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def set_default(environ: Environ, name: str, value: str, applied: dict[str, str]) -> None:
    """Set ``name`` unless the user set it (an empty value counts as unset); record what was set in ``applied``."""
    if environ.get(name):
        return
    environ[name] = value
    applied[name] = value


def log_prefix(environ: Environ) -> str:
    return (environ.get(LOG_PREFIX) or DEFAULT_LOG_PREFIX).strip("/")


def bucket_sink_url(scheme: str, bucket: str, prefix: str) -> str:
    """``s3://bucket/prefix`` or ``gs://bucket/prefix`` — the URL forms core's sinks accept."""
    bucket = bucket.strip().removeprefix(f"{scheme}://").strip("/")
    return f"{scheme}://{bucket}/{prefix}" if prefix else f"{scheme}://{bucket}"


def replica_name(*parts: str | None) -> str:
    """A short, object-name-safe replica id from the runtime's own names (function, instance)."""
    cleaned = [_UNSAFE.sub("-", part).strip("-") for part in parts if part]
    return "-".join(part for part in cleaned if part) or f"replica-{secrets.token_hex(4)}"


def random_suffix() -> str:
    """For platforms that expose no instance id to the process: distinct per instance, stable for its life."""
    return secrets.token_hex(4)


def temporary_dir(environ: Environ, name: str) -> str:
    """A folder under the platform's writable temporary area (``/tmp`` on every serverless platform)."""
    return os.path.join(environ.get("TMPDIR") or "/tmp", name)
