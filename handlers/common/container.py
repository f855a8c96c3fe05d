"""Container entries (EKS, GKE, Cloud Run, Container Apps): the cloud's defaults, then ``skyrelay serve``.

``skyrelay serve`` is uvicorn with the app's lifespan: on SIGTERM it stops accepting, lets in-flight requests
finish (up to 30 s), then the gateway's shutdown flushes the log pipeline within ``SKYRELAY_LOG_FLUSH_TIMEOUT_S``.
Give the pod a termination grace period longer than both. Its refusal to bind a non-loopback address without
gateway keys (unless ``SKYRELAY_ALLOW_UNAUTHENTICATED=true``) applies here too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from handlers.common.env import Environ, set_default


def container_serving_defaults(environ: Environ, applied: dict[str, str]) -> None:
    """Bind every interface (a container's port is reached from outside it) on ``$PORT`` when the platform sets it
    (Cloud Run, Container Apps)."""
    set_default(environ, "SKYRELAY_HOST", "0.0.0.0", applied)
    if environ.get("PORT"):
        set_default(environ, "SKYRELAY_PORT", environ["PORT"], applied)


def serve(argv: Sequence[str] | None, cloud: str, defaults: Callable[[Environ], dict[str, str]]) -> int:
    applied = defaults(os.environ)
    container_serving_defaults(os.environ, applied)
    if applied:
        shown = ", ".join(f"{name}={value}" for name, value in sorted(applied.items()))
        print(f"skyrelay: {cloud} defaults: {shown}", file=sys.stderr, flush=True)
    from core.cli import main

    return main(["serve", *(argv if argv is not None else sys.argv[1:])])
