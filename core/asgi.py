"""ASGI entry for servers that import an app factory (``uvicorn --factory core.asgi:create_app_from_env``)."""

from __future__ import annotations

from starlette.types import ASGIApp

from core.asgi_app import create_lazy_app
from core.gateway import build_gateway


def create_app_from_env() -> ASGIApp:
    """Settings from ``SKYRELAY_*`` variables; used by ``skyrelay serve`` for each worker process. The front builds
    the FastAPI app only when a request needs it (see :mod:`core.asgi_app`)."""
    return create_lazy_app(build_gateway(long_lived=True))
