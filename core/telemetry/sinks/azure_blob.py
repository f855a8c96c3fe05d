"""Request logs to Azure Blob Storage (``https://<account>.blob.core.windows.net/<container>/<prefix>``).

Identity: ``AZURE_STORAGE_CONNECTION_STRING`` when set (it also names the endpoint, which is how Azurite is
reached), else azure-identity's ``DefaultAzureCredential`` — managed identity on Azure Functions, App Service and
Container Apps, workload identity on AKS — whose tokens the SDK caches and renews before expiry. Blobs are
uploaded with ``overwrite=False``: "already exists" means an earlier attempt stored this very batch.
"""

from __future__ import annotations

import os
from typing import Any

from core.telemetry.sinks.base import SinkUnavailableError
from core.telemetry.sinks.objects import CALL_TIMEOUT_S, CONTENT_TYPE, ObjectStoreSink, unavailable


class AzureBlobLogSink(ObjectStoreSink):
    scheme = "https"

    def __init__(self, account_url: str, container: str, prefix: str) -> None:
        super().__init__(container, prefix)
        self._account_url = account_url.rstrip("/")
        self._container: Any = None

    def describe(self) -> str:
        tail = f"/{self.prefix}" if self.prefix else ""
        return f"{self._account_url}/{self.bucket}{tail}"

    def _container_client(self) -> Any:
        if self._container is None:
            try:
                from azure.storage.blob import BlobServiceClient
            except ImportError:
                raise SinkUnavailableError("install the `[azure]` extra to write request logs to Blob") from None
            # retry_total=0: the pipeline owns retries (with backoff and a disk spill); the storage SDK's own policy
            # waits 15 s before its first retry, which would hold a down sink's batch far past its write timeout.
            options: dict[str, Any] = {"retry_total": 0, "connection_timeout": 5, "read_timeout": CALL_TIMEOUT_S}
            connection = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
            if connection:
                service = BlobServiceClient.from_connection_string(connection, **options)
            else:
                from azure.identity import DefaultAzureCredential

                service = BlobServiceClient(self._account_url, credential=DefaultAzureCredential(), **options)
            self._container = service.get_container_client(self.bucket)
        return self._container

    def _put_if_absent(self, key: str, body: bytes) -> None:
        container = self._container_client()
        from azure.core.exceptions import AzureError, ResourceExistsError
        from azure.storage.blob import ContentSettings

        try:
            container.upload_blob(key, body, overwrite=False, timeout=int(CALL_TIMEOUT_S),
                                  content_settings=ContentSettings(content_type=CONTENT_TYPE))
        except ResourceExistsError:
            return
        except (AzureError, OSError) as exc:
            raise unavailable(self, "upload", exc) from None

    def _probe(self) -> None:
        self._container_client()
