"""ASGI entry for servers that import an app factory (``uvicorn --factory core.asgi:create_app_from_env``)."""

from __future__ import annotations

from fastapi import FastAPI

from core.app import create_app
from core.gateway import build_gateway


def create_app_from_env() -> FastAPI:
    """Settings from ``SKYRELAY_*`` variables; used by ``skyrelay serve`` for each worker process."""
    return create_app(build_gateway(long_lived=True))
