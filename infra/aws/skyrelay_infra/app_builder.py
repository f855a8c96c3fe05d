"""Build the CDK app for a pattern and synthesize it without the CDK CLI — safely.

``python app.py`` is not the CLI: it does not read ``cdk.context.json``, and a missing lookup (availability zones)
does not fail, it synthesizes ``dummy1a``/``dummy1b`` and records the lookup in the manifest's ``missing`` list. So
``build_app`` loads the context file itself and ``synth_checked`` refuses an assembly with missing lookups or
placeholder values. cdk-nag's AwsSolutions pack runs as a validation plugin on every synth.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aws_cdk import App, cx_api

from skyrelay_infra.context import DeploymentContext
from skyrelay_infra.nag import add_aws_solutions_checks

AWS_DIR = Path(__file__).resolve().parents[1]
PLACEHOLDER_MARKERS = ("dummy1a", "dummy1b", "dummy-value-for-", "DUMMY")


class PlaceholderContextError(RuntimeError):
    """The synth needed a context lookup that was not provided; deploying it would use placeholder values."""


def load_context_file(path: Path | None = None) -> dict[str, Any]:
    """``cdk.context.json``: lookups cached by ``cdk synth`` / ``cdk context`` (``cdk.json`` is merged by build_app)."""
    merged: dict[str, Any] = {}
    context_file = path or AWS_DIR / "cdk.context.json"
    if context_file.is_file():
        merged.update(json.loads(context_file.read_text()))
    return merged


def build_app(context: Mapping[str, Any], *, outdir: str | None = None, nag: bool = True) -> App:
    """One app per pattern; stacks are named ``<name>-<pattern part>-<region>``."""
    from skyrelay_infra.eks_stack import EksGatewayStack
    from skyrelay_infra.regional_stack import RegionalGatewayStack

    defaults = json.loads((AWS_DIR / "cdk.json").read_text()).get("context", {})
    app = App(context={**defaults, **context}, outdir=outdir)
    settings = DeploymentContext.from_mapping(app.node.get_all_context())  # includes -c values from the CLI
    if nag:
        add_aws_solutions_checks(app)
    name = settings.name
    if settings.pattern == "regional":
        RegionalGatewayStack(app, f"{name}-regional-{settings.region}", context=settings, region=settings.region)
    elif settings.pattern == "multi-regional":
        for region in settings.regions:
            RegionalGatewayStack(app, f"{name}-regional-{region}", context=settings, region=region)
    elif settings.pattern == "active-passive":
        standby = RegionalGatewayStack(
            app, f"{name}-standby-{settings.secondary_region}", context=settings,
            region=settings.secondary_region, failover_role="SECONDARY")
        primary = RegionalGatewayStack(
            app, f"{name}-primary-{settings.primary_region}", context=settings, region=settings.primary_region,
            failover_role="PRIMARY", replicate_logs_to=settings.secondary_region)
        primary.add_stack_dependency(standby, "the standby bucket and key must exist before replication targets them")
    else:
        EksGatewayStack(app, f"{name}-eks-{settings.region}", context=settings)
    return app


def synth_checked(app: App) -> cx_api.CloudAssembly:
    """Synthesize (cdk-nag gate included) and fail on missing lookups or placeholder values in any template."""
    assembly = app.synth()
    manifest = json.loads((Path(assembly.directory) / "manifest.json").read_text())
    missing = manifest.get("missing") or []
    if missing:
        keys = ", ".join(item.get("key", "?") for item in missing)
        raise PlaceholderContextError(
            f"context lookups missing ({keys}): run `cdk synth` once with credentials (it caches them in "
            "infra/aws/cdk.context.json) or add them to that file")
    for stack in assembly.stacks:
        text = json.dumps(stack.template)
        for marker in PLACEHOLDER_MARKERS:
            if marker in text:
                raise PlaceholderContextError(f"{stack.stack_name}: placeholder value {marker!r} in the template")
    return assembly
