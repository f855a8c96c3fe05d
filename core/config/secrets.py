"""Secret references in the config store: credentials are named, never written inline.

    {env: OPENAI_API_KEY}                    an environment variable (Cloud Run --set-secrets, Azure Key Vault
                                             references in app settings, Kubernetes secretKeyRef all land here)
    {file: /var/run/secrets/openai/key}      a mounted file (Kubernetes secrets, the Secrets Store CSI driver)
    {aws_secret: prod/openai, key: api_key}  AWS Secrets Manager, read with the gateway's own AWS identity

References are resolved when the store loads or reloads, never per request.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

SECRET_REF_KINDS = ("env", "file", "aws_secret")


class SecretResolutionError(Exception):
    """A referenced secret could not be read; the message names the reference, never a value."""


def is_secret_ref(value: Any) -> bool:
    return isinstance(value, dict) and sum(1 for k in SECRET_REF_KINDS if k in value) == 1 and set(value) <= {
        *SECRET_REF_KINDS, "key", "region"}


def describe_ref(ref: dict[str, Any]) -> str:
    kind = next(k for k in SECRET_REF_KINDS if k in ref)
    return f"{kind}:{ref[kind]}" + (f"#{ref['key']}" if "key" in ref else "")


def resolve_secret(ref: dict[str, Any]) -> Any:
    """The secret's value (a string, or parsed JSON when ``key`` selects a field of a JSON secret)."""
    if "env" in ref:
        value = os.environ.get(str(ref["env"]))
        if value is None:
            raise SecretResolutionError(f"environment variable {ref['env']} is not set")
    elif "file" in ref:
        try:
            value = Path(str(ref["file"])).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretResolutionError(f"cannot read secret file {ref['file']}: {exc.strerror}") from None
    else:
        value = _aws_secret(str(ref["aws_secret"]), ref.get("region"))
    if "key" in ref:
        try:
            value = json.loads(value)[ref["key"]]
        except (ValueError, KeyError, TypeError):
            raise SecretResolutionError(f"{describe_ref(ref)}: no field {ref['key']!r} in the JSON secret") from None
    return value


def _aws_secret(secret_id: str, region: str | None) -> str:
    try:
        import botocore.session
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        raise SecretResolutionError("install the `[aws]` extra to read AWS Secrets Manager references") from None
    session = botocore.session.get_session()
    client = session.create_client("secretsmanager", region_name=region or session.get_config_variable("region"))
    try:
        answer = client.get_secret_value(SecretId=secret_id)
    except (BotoCoreError, ClientError) as exc:
        raise SecretResolutionError(f"cannot read AWS secret {secret_id}: {type(exc).__name__}") from None
    return str(answer.get("SecretString") or "")
