"""Where the config store document comes from, fetched with a version tag so unchanged documents cost nothing.

``open_source(uri)``: a file path (the embedded default), ``s3://bucket/key``, ``ssm:///parameter-name``,
``gs://bucket/object``,
``https://<account>.blob.core.windows.net/<container>/<blob>``, or any other ``https://`` control-plane URL. Bucket
sources use each cloud's SDK and the gateway's own identity; the SDKs' standard endpoint variables
(``AWS_ENDPOINT_URL``, ``STORAGE_EMULATOR_HOST``, an Azure connection string in
``AZURE_STORAGE_CONNECTION_STRING``) are honoured so the same code runs against emulators. SDK calls run in a
worker thread: they are blocking.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit


class ConfigSourceError(Exception):
    """The source could not be read this time (the store keeps its last good document)."""


class ConfigSource(Protocol):
    def describe(self) -> str: ...

    async def fetch(self, version: str | None) -> tuple[str | None, str | None]:
        """``(text, version)``; ``text`` is None when the document is unchanged since ``version``."""
        ...


class FileSource:
    def __init__(self, path: str) -> None:
        self._path = Path(path)

    def describe(self) -> str:
        return str(self._path)

    async def fetch(self, version: str | None) -> tuple[str | None, str | None]:
        try:
            stat = self._path.stat()
            current = f"{stat.st_mtime_ns}-{stat.st_size}"
            if current == version:
                return None, version
            return self._path.read_text(encoding="utf-8"), current
        except OSError as exc:
            raise ConfigSourceError(f"cannot read {self._path}: {exc.strerror}") from None


class S3Source:
    def __init__(self, bucket: str, key: str) -> None:
        self._bucket, self._key = bucket, key
        self._client: Any = None

    def describe(self) -> str:
        return f"s3://{self._bucket}/{self._key}"

    def _fetch(self, version: str | None) -> tuple[str | None, str | None]:
        try:
            import botocore.session
            from botocore.exceptions import BotoCoreError, ClientError
        except ImportError:
            raise ConfigSourceError("install the `[aws]` extra to read the config store from S3") from None
        if self._client is None:
            self._client = botocore.session.get_session().create_client("s3")
        kwargs = {"Bucket": self._bucket, "Key": self._key}
        if version:
            kwargs["IfNoneMatch"] = version
        try:
            answer = self._client.get_object(**kwargs)
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 304:
                return None, version
            raise ConfigSourceError(f"{self.describe()}: {exc.response.get('Error', {}).get('Code')}") from None
        except BotoCoreError as exc:
            raise ConfigSourceError(f"{self.describe()}: {type(exc).__name__}") from None
        return answer["Body"].read().decode("utf-8"), answer.get("ETag")

    async def fetch(self, version: str | None) -> tuple[str | None, str | None]:
        return await asyncio.to_thread(self._fetch, version)


class SsmParameterSource:
    """``ssm:///<name>``: an SSM parameter (SecureString decrypted); its version number is the version tag."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._client: Any = None

    def describe(self) -> str:
        return f"ssm://{self._name}"

    def _fetch(self, version: str | None) -> tuple[str | None, str | None]:
        try:
            import botocore.session
            from botocore.exceptions import BotoCoreError, ClientError
        except ImportError:
            raise ConfigSourceError("install the `[aws]` extra to read the config store from SSM") from None
        if self._client is None:
            self._client = botocore.session.get_session().create_client("ssm")
        try:
            parameter = self._client.get_parameter(Name=self._name, WithDecryption=True)["Parameter"]
        except ClientError as exc:
            raise ConfigSourceError(f"{self.describe()}: {exc.response.get('Error', {}).get('Code')}") from None
        except BotoCoreError as exc:
            raise ConfigSourceError(f"{self.describe()}: {type(exc).__name__}") from None
        current = str(parameter["Version"])
        return (None, version) if current == version else (str(parameter["Value"]), current)

    async def fetch(self, version: str | None) -> tuple[str | None, str | None]:
        return await asyncio.to_thread(self._fetch, version)


class GcsSource:
    def __init__(self, bucket: str, name: str) -> None:
        self._bucket, self._name = bucket, name

    def describe(self) -> str:
        return f"gs://{self._bucket}/{self._name}"

    def _fetch(self, version: str | None) -> tuple[str | None, str | None]:
        try:
            from google.api_core.exceptions import GoogleAPIError
            from google.cloud import storage
        except ImportError:
            raise ConfigSourceError("install the `[gcp]` extra to read the config store from GCS") from None
        try:
            blob = storage.Client().bucket(self._bucket).blob(self._name)
            blob.reload()
            if blob.etag == version:
                return None, version
            return blob.download_as_text(), blob.etag
        except GoogleAPIError as exc:
            raise ConfigSourceError(f"{self.describe()}: {type(exc).__name__}") from None

    async def fetch(self, version: str | None) -> tuple[str | None, str | None]:
        return await asyncio.to_thread(self._fetch, version)


class AzureBlobSource:
    def __init__(self, account_url: str, container: str, blob: str) -> None:
        self._account_url, self._container, self._blob = account_url, container, blob

    def describe(self) -> str:
        return f"{self._account_url}/{self._container}/{self._blob}"

    def _fetch(self, version: str | None) -> tuple[str | None, str | None]:
        try:
            from azure.core.exceptions import AzureError
            from azure.storage.blob import BlobClient
        except ImportError:
            raise ConfigSourceError("install the `[azure]` extra to read the config store from Blob") from None
        try:
            connection = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
            if connection:
                client = BlobClient.from_connection_string(connection, self._container, self._blob)
            else:
                from azure.identity import DefaultAzureCredential

                client = BlobClient(self._account_url, self._container, self._blob,
                                    credential=DefaultAzureCredential())
            etag = client.get_blob_properties().etag
            if etag == version:
                return None, version
            return client.download_blob().readall().decode("utf-8"), etag
        except AzureError as exc:
            raise ConfigSourceError(f"{self.describe()}: {type(exc).__name__}") from None

    async def fetch(self, version: str | None) -> tuple[str | None, str | None]:
        return await asyncio.to_thread(self._fetch, version)


class HttpsSource:
    """A control-plane URL; ``SKYRELAY_CONFIG_TOKEN`` (if set) is sent as a bearer token."""

    def __init__(self, url: str) -> None:
        self._url = url

    def describe(self) -> str:
        return self._url.split("?", 1)[0]

    async def fetch(self, version: str | None) -> tuple[str | None, str | None]:
        import httpx

        headers = {"accept": "application/json, application/yaml"}
        if version:
            headers["if-none-match"] = version
        token = os.environ.get("SKYRELAY_CONFIG_TOKEN")
        if token:
            headers["authorization"] = f"Bearer {token}"
        try:
            async with httpx.AsyncClient(timeout=10.0) as client:
                response = await client.get(self._url, headers=headers)
        except httpx.HTTPError as exc:
            raise ConfigSourceError(f"{self.describe()}: {type(exc).__name__}") from None
        if response.status_code == 304:
            return None, version
        if response.status_code != 200:
            raise ConfigSourceError(f"{self.describe()}: HTTP {response.status_code}")
        return response.text, response.headers.get("etag")


def open_source(uri: str) -> ConfigSource:
    parts = urlsplit(uri)
    if parts.scheme == "ssm":
        return SsmParameterSource(parts.path or parts.netloc)
    if parts.scheme == "s3":
        return S3Source(parts.netloc, parts.path.lstrip("/"))
    if parts.scheme == "gs":
        return GcsSource(parts.netloc, parts.path.lstrip("/"))
    if parts.scheme == "https" and parts.netloc.endswith(".blob.core.windows.net"):
        container, _, blob = parts.path.lstrip("/").partition("/")
        return AzureBlobSource(f"https://{parts.netloc}", container, blob)
    if parts.scheme in ("https", "http"):
        return HttpsSource(uri)
    return FileSource(uri[len("file://"):] if uri.startswith("file://") else uri)
