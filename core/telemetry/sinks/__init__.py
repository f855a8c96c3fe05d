"""Log sinks, chosen by URL (``SKYRELAY_LOG_SINK``); each cloud SDK is imported only by its own sink."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from core.errors import InvalidRequestError
from core.telemetry.sinks.base import LogSink


def open_sink(url: str, *, replica: str) -> LogSink:
    """The sink a URL names: ``file://DIR`` (relative paths allowed: ``file://./logs``) or ``stdout://``."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        from core.telemetry.sinks.file import FileLogSink

        path = url[len("file://") :]
        return FileLogSink(Path(path or "."), replica=replica)
    if parts.scheme in ("stdout", "-"):
        from core.telemetry.sinks.stdout import StdoutLogSink

        return StdoutLogSink()
    raise InvalidRequestError(f"Unsupported log sink URL scheme {parts.scheme!r} in {url!r}")
