"""cdk-nag 3 (AwsSolutions) as a synth gate, and the only way we accept one of its findings: with a reason.

cdk-nag 3 is a policy-validation plugin: ``app.synth()`` raises ``ValidationFailed`` on any unacknowledged
finding. Acknowledgments are per finding id (``AwsSolutions-IAM5[Action::s3:Abort*]`` is not covered by a bare
``AwsSolutions-IAM5``), so every call here names the exact finding and says why it is acceptable.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct


def add_aws_solutions_checks(app: App) -> None:
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def acknowledge(scope: IConstruct, rule: str, reason: str, *findings: str) -> None:
    """Accept ``rule`` (or each ``rule[finding]``) on ``scope`` and its children; ``reason`` is mandatory."""
    if len(reason.strip()) < 20:
        raise ValueError(f"acknowledging {rule} needs a real reason, got {reason!r}")
    ids = [f"{rule}[{finding}]" for finding in findings] or [rule]
    Validations.of(scope).acknowledge(*(Acknowledgment(id=rule_id, reason=reason) for rule_id in ids))
