"""Cloud Run service / GKE container entry: ``python -m handlers.gcp.server [skyrelay serve flags]``.

GCP defaults (GCS sink from ``SKYRELAY_LOG_BUCKET``), bind ``0.0.0.0:$PORT`` (Cloud Run sets ``PORT``), then
``skyrelay serve``: uvicorn with graceful SIGTERM handling and a final log flush (see
:mod:`handlers.common.container`). Cloud Run gives a container 10 s after SIGTERM: keep
``SKYRELAY_LOG_FLUSH_TIMEOUT_S`` below that.
"""

from __future__ import annotations

from collections.abc import Sequence

from handlers.common.container import serve
from handlers.gcp.defaults import apply_container_defaults


def main(argv: Sequence[str] | None = None) -> int:
    return serve(argv, "gcp", apply_container_defaults)


if __name__ == "__main__":
    raise SystemExit(main())
