"""Azure defaults, applied to the environment before core reads its settings (see :mod:`handlers.common.env`).

* Request logs: ``https://<account>.blob.core.windows.net/<container>/<prefix>`` when ``SKYRELAY_LOG_SINK`` is unset
  and a storage account is named — ``SKYRELAY_LOG_STORAGE_ACCOUNT``, else the function app's own identity-based
  storage connection (``AzureWebJobsStorage__blobServiceUri`` or ``AzureWebJobsStorage__accountName``); container
  ``SKYRELAY_LOG_CONTAINER`` (``skyrelay-logs``), prefix ``SKYRELAY_LOG_PREFIX`` (``skyrelay``). With no account,
  ``stdout://`` (the Functions host forwards it to Application Insights).
* Replica id: the site name and instance (``WEBSITE_SITE_NAME``, ``WEBSITE_INSTANCE_ID`` or ``CONTAINER_NAME``).
* Spill folder under ``/tmp``: ``/home`` is shared by every instance of the app, ``/tmp`` is the instance's own.

Identity needs nothing here: the Blob sink and the providers use azure-identity's ``DefaultAzureCredential``, which
finds the app's managed identity (``IDENTITY_ENDPOINT``/``IDENTITY_HEADER``, set by the platform).
"""

from __future__ import annotations

from handlers.common.env import NO_BUCKET_SINK, Environ, log_prefix, replica_name, set_default, temporary_dir

DEFAULT_CONTAINER = "skyrelay-logs"


def blob_service_url(environ: Environ) -> str | None:
    """The Blob endpoint of the account that receives logs, or None when none is named."""
    account = environ.get("SKYRELAY_LOG_STORAGE_ACCOUNT")
    if account:
        return f"https://{account.strip()}.blob.core.windows.net"
    uri = environ.get("AzureWebJobsStorage__blobServiceUri")
    if uri:
        return uri.strip().rstrip("/")
    account = environ.get("AzureWebJobsStorage__accountName")
    return f"https://{account.strip()}.blob.core.windows.net" if account else None


def apply_function_defaults(environ: Environ) -> dict[str, str]:
    """For ``handlers/azure/function_app.py``; returns what was set."""
    applied: dict[str, str] = {}
    service = blob_service_url(environ)
    if service:
        container = (environ.get("SKYRELAY_LOG_CONTAINER") or DEFAULT_CONTAINER).strip("/")
        prefix = log_prefix(environ)
        sink = f"{service}/{container}/{prefix}" if prefix else f"{service}/{container}"
    else:
        sink = NO_BUCKET_SINK
    set_default(environ, "SKYRELAY_LOG_SINK", sink, applied)
    instance = environ.get("WEBSITE_INSTANCE_ID") or environ.get("CONTAINER_NAME")
    if instance:
        set_default(environ, "SKYRELAY_REPLICA_ID",
                    replica_name(environ.get("WEBSITE_SITE_NAME"), instance[:12]), applied)
    set_default(environ, "SKYRELAY_LOG_SPILL_DIR", temporary_dir(environ, "skyrelay-spill"), applied)
    return applied
