"""EKS (and ECS) container entry: ``python -m handlers.aws.server [skyrelay serve flags]``.

AWS defaults (S3 sink from ``SKYRELAY_LOG_BUCKET``, ``AWS_DEFAULT_REGION``), bind ``0.0.0.0``, then ``skyrelay
serve``: uvicorn with graceful SIGTERM handling and a final log flush (see :mod:`handlers.common.container`).
Credentials come from IRSA or EKS Pod Identity through botocore's default chain.
"""

from __future__ import annotations

from collections.abc import Sequence

from handlers.aws.defaults import apply_container_defaults
from handlers.common.container import serve


def main(argv: Sequence[str] | None = None) -> int:
    return serve(argv, "aws", apply_container_defaults)


if __name__ == "__main__":
    raise SystemExit(main())
