"""Request logs to S3 (``s3://bucket/prefix``) with botocore, encrypted with SSE-KMS when a key is configured.

Credentials come from botocore's default chain — Lambda's role, IRSA (web identity), EKS Pod Identity, ECS, EC2 —
as refreshable credentials that botocore renews before they expire. ``AWS_ENDPOINT_URL`` (or
``AWS_ENDPOINT_URL_S3``) points it at an emulator. Objects are created with ``If-None-Match: *``, so an object that
already exists is never overwritten: S3 answers 412, which means an earlier attempt stored this very batch.
"""

from __future__ import annotations

from typing import Any

from core.telemetry.sinks.base import SinkUnavailableError
from core.telemetry.sinks.objects import CALL_TIMEOUT_S, CONTENT_TYPE, ObjectStoreSink, unavailable

_ALREADY_EXISTS = {"PreconditionFailed", "412"}


class S3LogSink(ObjectStoreSink):
    scheme = "s3"

    def __init__(self, bucket: str, prefix: str, *, kms_key_id: str | None = None) -> None:
        super().__init__(bucket, prefix)
        self._kms_key_id = kms_key_id or None
        self._client: Any = None

    def _s3(self) -> Any:
        if self._client is None:
            try:
                import botocore.session
                from botocore.config import Config
            except ImportError:
                raise SinkUnavailableError("install the `[aws]` extra to write request logs to S3") from None
            config = Config(connect_timeout=5, read_timeout=CALL_TIMEOUT_S,
                            retries={"total_max_attempts": 2, "mode": "standard"})
            self._client = botocore.session.get_session().create_client("s3", config=config)
        return self._client

    def _put_if_absent(self, key: str, body: bytes) -> None:
        client = self._s3()
        from botocore.exceptions import BotoCoreError, ClientError

        extra: dict[str, Any] = {}
        if self._kms_key_id:
            extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self._kms_key_id, "BucketKeyEnabled": True}
        try:
            client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=CONTENT_TYPE,
                                  IfNoneMatch="*", **extra)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _ALREADY_EXISTS:
                return
            raise SinkUnavailableError(f"{self.describe()}: PutObject failed ({code or 'ClientError'})") from None
        except BotoCoreError as exc:
            raise unavailable(self, "PutObject", exc) from None

    def _probe(self) -> None:
        """Builds the client only: a log writer's role often lacks s3:ListBucket, and a down bucket must not take
        the gateway out of rotation (the pipeline spills instead; /v1/ready shows it)."""
        self._s3()
