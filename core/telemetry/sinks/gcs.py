"""Request logs to Google Cloud Storage (``gs://bucket/prefix``) with google-cloud-storage.

Credentials are Application Default Credentials: the service account of Cloud Run, Cloud Run functions, GKE
Workload Identity or a key file in ``GOOGLE_APPLICATION_CREDENTIALS``; google-auth caches the access token and
renews it before it expires. ``STORAGE_EMULATOR_HOST`` points the client at an emulator. Objects are created with
``ifGenerationMatch=0`` ("only if absent"): a 412 means an earlier attempt stored this very batch.
"""

from __future__ import annotations

import os
from typing import Any

from core.telemetry.sinks.base import SinkUnavailableError
from core.telemetry.sinks.objects import CALL_TIMEOUT_S, CONTENT_TYPE, ObjectStoreSink, unavailable


class GcsLogSink(ObjectStoreSink):
    scheme = "gs"

    def __init__(self, bucket: str, prefix: str) -> None:
        super().__init__(bucket, prefix)
        self._bucket: Any = None

    def _gcs_bucket(self) -> Any:
        if self._bucket is None:
            try:
                from google.cloud import storage
            except ImportError:
                raise SinkUnavailableError("install the `[gcp]` extra to write request logs to GCS") from None
            client = storage.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT") or None)
            self._bucket = client.bucket(self.bucket)
        return self._bucket

    def _put_if_absent(self, key: str, body: bytes) -> None:
        errors = _errors()
        from google.api_core.exceptions import PreconditionFailed

        try:
            blob = self._gcs_bucket().blob(key)
            # retry=None: the pipeline owns retries (with backoff and a disk spill), the SDK's would block for 120 s.
            blob.upload_from_string(body, content_type=CONTENT_TYPE, if_generation_match=0,
                                    timeout=CALL_TIMEOUT_S, retry=None)
        except PreconditionFailed:
            return
        except errors as exc:
            raise unavailable(self, "upload", exc) from None

    def _probe(self) -> None:
        try:
            self._gcs_bucket()
        except _errors() as exc:
            raise unavailable(self, "client setup", exc) from None


def _errors() -> tuple[type[BaseException], ...]:
    """What a GCS call can raise: API errors, credential errors, and the HTTP library's connection errors."""
    try:
        import requests
        from google.api_core.exceptions import GoogleAPIError
        from google.auth.exceptions import GoogleAuthError
    except ImportError:
        raise SinkUnavailableError("install the `[gcp]` extra to write request logs to GCS") from None
    return GoogleAPIError, GoogleAuthError, requests.RequestException, OSError
