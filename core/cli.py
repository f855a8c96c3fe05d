"""``skyrelay`` — serve the gateway, validate config files, manage gateway keys.

    skyrelay serve [--host H] [--port P] [--config FILE] [--workers N]
    skyrelay config validate FILE
    skyrelay keys create [--id ID]       prints a new key once, and the line to store in the config file
    skyrelay keys hash KEY               the SHA-256 digest to store for an existing key
    skyrelay bundle --cloud aws|gcp|azure [--out DIR] [--arch x86_64|arm64] [--python-version 3.12]
                    [--compile|--no-compile]
                                         the deployable artifact of a cloud entry (see core/bundle)
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError


def _is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _serve(args: argparse.Namespace) -> int:
    overrides = {"SKYRELAY_HOST": args.host, "SKYRELAY_PORT": args.port, "SKYRELAY_CONFIG": args.config,
                 "SKYRELAY_WORKERS": args.workers}
    for name, value in overrides.items():
        if value is not None:
            os.environ[name] = str(value)  # workers are separate processes: they read the same environment

    from core.config.sources import ConfigSourceError
    from core.config.store_file import StoreFileError
    from core.gateway import build_config_store
    from core.providers.registry import DEFAULT_PROVIDERS
    from core.settings import Settings

    try:
        settings = Settings()
        store = build_config_store(settings, set(DEFAULT_PROVIDERS))
        asyncio.run(store.load_initial())
    except ValidationError as exc:
        print(f"skyrelay: invalid settings: {exc}", file=sys.stderr)
        return 2
    except (StoreFileError, ConfigSourceError) as exc:
        for line in getattr(exc, "errors", None) or [str(exc)]:
            print(f"skyrelay: config store {getattr(exc, 'source', settings.config)}: {line}", file=sys.stderr)
        return 2
    keys = store.snapshot.keys
    if not keys.enabled:
        if not _is_loopback(settings.host) and not settings.allow_unauthenticated:
            print(
                f"skyrelay: refusing to bind {settings.host}: no gateway API keys are configured, so anyone who "
                "can reach it could use your provider credentials. Configure keys (skyrelay keys create) or set "
                "SKYRELAY_ALLOW_UNAUTHENTICATED=true.",
                file=sys.stderr,
            )
            return 2
        print("skyrelay: no gateway API keys configured — every caller is accepted", file=sys.stderr)

    import uvicorn

    print(f"skyrelay: serving on http://{settings.host}:{settings.port} "
          f"({len(keys)} gateway keys, logs to {settings.log_sink})", file=sys.stderr, flush=True)
    uvicorn.run(
        "core.asgi:create_app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers if settings.workers > 1 else None,
        loop="uvloop",
        # uvicorn imports a "module:attribute" string in each worker, as it does its own protocols' names
        http="core.server:GatewayHttpProtocol" if settings.http_protocol == "skyrelay" else settings.http_protocol,
        timeout_keep_alive=settings.timeout_keep_alive_s,
        ws="none",  # no WebSocket routes: "auto" would import the websockets library into every worker (2.6 MiB)
        access_log=False,
        log_level=settings.log_level,
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_s)),
        server_header=False,
        proxy_headers=False,  # client addresses are not used; skip the per-request forwarded-header middleware
    )
    return 0


def _config_validate(args: argparse.Namespace) -> int:
    from core.config.store_file import StoreFileError, load_store_file
    from core.providers.registry import DEFAULT_PROVIDERS

    try:
        document = load_store_file(args.file, set(DEFAULT_PROVIDERS))
    except StoreFileError as exc:
        for error in exc.errors:
            print(f"{exc.source}: {error}", file=sys.stderr)
        return 1
    print(f"{args.file}: valid ({len(document.gateway_keys)} gateway keys, {len(document.configs)} configs, "
          f"{len(document.virtual_keys)} virtual keys)")
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    from core.auth.gateway_keys import generate_key, hash_key

    key = generate_key()
    print(f"key (shown once; give it to the caller): {key}")
    print("add to the config file under gateway_keys:")
    print(f"  - id: {args.id}\n    sha256: {hash_key(key)}")
    return 0


def _keys_hash(args: argparse.Namespace) -> int:
    from core.auth.gateway_keys import hash_key

    key = args.key if args.key is not None else sys.stdin.readline().strip()
    print(hash_key(key))
    return 0


def _bundle(args: argparse.Namespace) -> int:
    from pathlib import Path

    from core.bundle.build import BundleError, build
    from core.bundle.sources import CheckoutError

    try:
        artifact = build(args.cloud, Path(args.out), arch=args.arch, python_version=args.python_version,
                         compile_bytecode=args.compile)
    except (BundleError, CheckoutError) as exc:
        print(f"skyrelay bundle: {exc}", file=sys.stderr)
        return 1
    print(f"{artifact.path}\t{artifact.size} bytes")
    if artifact.archive is not None:
        print(f"{artifact.archive}\t{artifact.archive.stat().st_size} bytes")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skyrelay", description="Self-hosted LLM gateway")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1, or SKYRELAY_HOST)")
    serve.add_argument("--port", type=int, help="port to bind (default 8787, or SKYRELAY_PORT)")
    serve.add_argument("--config", help="config store file (YAML/JSON), or SKYRELAY_CONFIG")
    serve.add_argument("--workers", type=int, help="worker processes (default 1)")
    serve.set_defaults(func=_serve)

    config = sub.add_parser("config", help="config files").add_subparsers(dest="config_command", required=True)
    validate = config.add_parser("validate", help="check a config store file and report every error")
    validate.add_argument("file")
    validate.set_defaults(func=_config_validate)

    keys = sub.add_parser("keys", help="gateway API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="generate a key and print its digest")
    create.add_argument("--id", default="my-key", help="the key's public id (appears in logs)")
    create.set_defaults(func=_keys_create)
    hash_cmd = keys.add_parser("hash", help="digest of an existing key (from the argument or stdin)")
    hash_cmd.add_argument("key", nargs="?")
    hash_cmd.set_defaults(func=_keys_hash)

    bundle = sub.add_parser("bundle", help="build the deployable artifact of a cloud entry")
    bundle.add_argument("--cloud", required=True, choices=["aws", "gcp", "azure"])
    bundle.add_argument("--out", default="dist/bundle", help="output folder (default dist/bundle)")
    bundle.add_argument("--arch", default="x86_64", choices=["x86_64", "arm64"], help="Lambda architecture")
    bundle.add_argument("--python-version", default="3.12", help="Lambda Python runtime version (default 3.12)")
    compiled = bundle.add_mutually_exclusive_group()
    compiled.add_argument("--compile", action="store_const", const=True, dest="compile",
                          help="ship .pyc for the Lambda runtime, or fail: it needs that Python version here (default: "
                               "ship them when this Python is the target's, else say so and build without)")
    compiled.add_argument("--no-compile", action="store_const", const=False, dest="compile",
                          help="never ship .pyc (smaller zip, slower cold starts)")
    bundle.set_defaults(func=_bundle)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
