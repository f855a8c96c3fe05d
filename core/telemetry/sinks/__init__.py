"""Log sinks, chosen by URL (``SKYRELAY_LOG_SINK``); each cloud SDK is imported only by its own sink's module.

    file://DIR                                                   local JSON Lines (the embedded default)
    stdout://                                                    JSON Lines on standard output
    s3://BUCKET/PREFIX                                           S3, SSE-KMS with SKYRELAY_LOG_S3_KMS_KEY_ID
    gs://BUCKET/PREFIX                                           Google Cloud Storage
    https://ACCOUNT.blob.core.windows.net/CONTAINER/PREFIX       Azure Blob Storage
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from core.errors import InvalidRequestError
from core.telemetry.sinks.base import LogSink


def describe_sink_url(url: str) -> str:
    """The URL as logs and ``/v1/ready`` show it (no query string: it could hold a SAS token); raises like
    :func:`open_sink` for a URL it would refuse, without importing any SDK."""
    parts = urlsplit(url)
    if parts.scheme in ("file", "stdout", "-") or (parts.scheme in ("s3", "gs") and parts.netloc):
        return url.split("?", 1)[0]
    if parts.scheme == "https" and ".blob.core." in parts.netloc and parts.path.lstrip("/").partition("/")[0]:
        return f"https://{parts.netloc}{parts.path}"
    raise _unsupported(url)


def open_sink(url: str, *, replica: str, s3_kms_key_id: str | None = None) -> LogSink:
    """The sink a URL names; relative file paths are allowed (``file://./logs``)."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        from core.telemetry.sinks.file import FileLogSink

        return FileLogSink(Path(url[len("file://"):] or "."), replica=replica)
    if parts.scheme in ("stdout", "-"):
        from core.telemetry.sinks.stdout import StdoutLogSink

        return StdoutLogSink()
    if parts.scheme == "s3" and parts.netloc:
        from core.telemetry.sinks.s3 import S3LogSink

        return S3LogSink(parts.netloc, parts.path, kms_key_id=s3_kms_key_id)
    if parts.scheme == "gs" and parts.netloc:
        from core.telemetry.sinks.gcs import GcsLogSink

        return GcsLogSink(parts.netloc, parts.path)
    if parts.scheme == "https" and ".blob.core." in parts.netloc:
        container, _, prefix = parts.path.lstrip("/").partition("/")
        if container:
            from core.telemetry.sinks.azure_blob import AzureBlobLogSink

            return AzureBlobLogSink(f"https://{parts.netloc}", container, prefix)
    raise _unsupported(url)


def _unsupported(url: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"Unsupported log sink {url!r}: use file://DIR, stdout://, s3://BUCKET/PREFIX, gs://BUCKET/PREFIX or "
        "https://ACCOUNT.blob.core.windows.net/CONTAINER/PREFIX"
    )
