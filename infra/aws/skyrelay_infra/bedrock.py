"""The one IAM statement that lets a gateway call Bedrock: two actions, on the configured models only.

Converse uses ``bedrock:InvokeModel`` and ConverseStream ``bedrock:InvokeModelWithResponseStream``. A cross-region
inference profile is authorized on the profile *and* on the foundation model in every region the profile may route
to, so foundation-model ARNs are generated for each of ``model_regions`` (default: the stack's region). Nothing here
uses a wildcard: a gateway key leak must not open every model in the account.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_iam as iam

BEDROCK_ACTIONS = ("bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream")


def foundation_model_arns(models: Sequence[str], regions: Sequence[str]) -> list[str]:
    """``anthropic.claude-...`` → one foundation-model ARN per region; full ARNs pass through unchanged."""
    arns: list[str] = []
    for model in models:
        if model.startswith("arn:"):
            arns.append(model)
            continue
        arns.extend(f"arn:aws:bedrock:{region}::foundation-model/{model}" for region in regions)
    return arns


def inference_profile_arns(profiles: Sequence[str], region: str, account: str) -> list[str]:
    """``us.anthropic.claude-...`` → the profile ARN in the gateway's region and account; ARNs pass through."""
    return [p if p.startswith("arn:") else f"arn:aws:bedrock:{region}:{account}:inference-profile/{p}"
            for p in profiles]


def bedrock_invoke_statement(
    *,
    models: Sequence[str],
    inference_profiles: Sequence[str],
    region: str,
    account: str,
    model_regions: Sequence[str] = (),
) -> iam.PolicyStatement:
    resources = foundation_model_arns(models, list(model_regions) or [region]) + inference_profile_arns(
        inference_profiles, region, account
    )
    if any("*" in arn for arn in resources):
        raise ValueError(f"Bedrock resources must name models, not patterns: {resources}")
    return iam.PolicyStatement(
        sid="InvokeConfiguredBedrockModels",
        actions=list(BEDROCK_ACTIONS),
        resources=sorted(set(resources)),
    )
