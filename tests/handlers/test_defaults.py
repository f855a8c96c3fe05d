"""Each cloud's defaults: filled in from what the platform provides, never over what the user set, and in the URL
forms core's sinks accept."""

from __future__ import annotations

import pytest

from core.telemetry.sinks import open_sink
from core.telemetry.sinks.azure_blob import AzureBlobLogSink
from core.telemetry.sinks.gcs import GcsLogSink
from core.telemetry.sinks.s3 import S3LogSink
from handlers.aws.defaults import apply_container_defaults as aws_container
from handlers.aws.defaults import apply_lambda_defaults
from handlers.azure.defaults import apply_function_defaults as azure_function
from handlers.common.invocation import DEADLINE_RESERVE_S, flush_budget, flush_cap_from
from handlers.gcp.defaults import apply_function_defaults as gcp_function

LAMBDA = {"AWS_LAMBDA_FUNCTION_NAME": "gw", "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/27/[$LATEST]a1b2c3d4e5f6a7b8c9d0",
          "AWS_REGION": "eu-west-1", "TMPDIR": "/tmp"}


def test_lambda_logs_to_the_named_bucket_from_tmp_with_the_instance_as_replica() -> None:
    env = {**LAMBDA, "SKYRELAY_LOG_BUCKET": "acme-llm-logs", "SKYRELAY_LOG_PREFIX": "/gateway/"}
    applied = apply_lambda_defaults(env)

    assert env["SKYRELAY_LOG_SINK"] == "s3://acme-llm-logs/gateway"
    assert env["SKYRELAY_REPLICA_ID"] == "gw-a1b2c3d4e5f6"
    assert env["SKYRELAY_LOG_SPILL_DIR"] == "/tmp/skyrelay-spill"
    assert env["AWS_DEFAULT_REGION"] == "eu-west-1"  # botocore ignores AWS_REGION
    assert applied == {k: env[k] for k in ("SKYRELAY_LOG_SINK", "SKYRELAY_REPLICA_ID", "SKYRELAY_LOG_SPILL_DIR",
                                           "AWS_DEFAULT_REGION")}
    sink = open_sink(env["SKYRELAY_LOG_SINK"], replica="r")
    assert isinstance(sink, S3LogSink) and (sink.bucket, sink.prefix) == ("acme-llm-logs", "gateway")


def test_what_the_user_set_wins() -> None:
    env = {**LAMBDA, "SKYRELAY_LOG_BUCKET": "acme", "SKYRELAY_LOG_SINK": "file:///mnt/efs/logs",
           "SKYRELAY_REPLICA_ID": "mine", "AWS_DEFAULT_REGION": "us-west-2"}
    apply_lambda_defaults(env)

    assert (env["SKYRELAY_LOG_SINK"], env["SKYRELAY_REPLICA_ID"], env["AWS_DEFAULT_REGION"]) == (
        "file:///mnt/efs/logs", "mine", "us-west-2")


@pytest.mark.parametrize("apply", [apply_lambda_defaults, aws_container, gcp_function, azure_function])
def test_without_a_bucket_logs_go_to_the_platform_log_stream(apply) -> None:
    env = dict(LAMBDA)
    apply(env)

    assert env["SKYRELAY_LOG_SINK"] == "stdout://"


def test_the_eks_container_keeps_the_pod_name_as_replica() -> None:
    env = {"SKYRELAY_LOG_BUCKET": "acme", "AWS_REGION": "us-east-1"}
    aws_container(env)

    assert env["SKYRELAY_LOG_SINK"] == "s3://acme/skyrelay" and "SKYRELAY_REPLICA_ID" not in env


def test_cloud_run_functions_log_to_gcs_with_a_per_instance_replica() -> None:
    first = {"SKYRELAY_LOG_BUCKET": "acme-logs", "K_REVISION": "skyrelay-00003-kax"}
    second = dict(first)
    gcp_function(first)
    gcp_function(second)

    assert first["SKYRELAY_LOG_SINK"] == "gs://acme-logs/skyrelay"
    assert first["SKYRELAY_REPLICA_ID"].startswith("skyrelay-00003-kax-")
    assert first["SKYRELAY_REPLICA_ID"] != second["SKYRELAY_REPLICA_ID"]
    sink = open_sink(first["SKYRELAY_LOG_SINK"], replica="r")
    assert isinstance(sink, GcsLogSink) and (sink.bucket, sink.prefix) == ("acme-logs", "skyrelay")


@pytest.mark.parametrize(("env", "url"), [
    ({"SKYRELAY_LOG_STORAGE_ACCOUNT": "acmelogs"}, "https://acmelogs.blob.core.windows.net/skyrelay-logs/skyrelay"),
    ({"AzureWebJobsStorage__accountName": "funcstore", "SKYRELAY_LOG_CONTAINER": "llm", "SKYRELAY_LOG_PREFIX": "gw"},
     "https://funcstore.blob.core.windows.net/llm/gw"),
    ({"AzureWebJobsStorage__blobServiceUri": "https://funcstore.blob.core.usgovcloudapi.net/"},
     "https://funcstore.blob.core.usgovcloudapi.net/skyrelay-logs/skyrelay"),
])
def test_azure_logs_to_blob_in_the_named_or_the_function_apps_account(env: dict[str, str], url: str) -> None:
    env = {**env, "WEBSITE_SITE_NAME": "skyrelay-eastus", "WEBSITE_INSTANCE_ID": "0f9e8d7c6b5a49382716"}
    azure_function(env)

    assert env["SKYRELAY_LOG_SINK"] == url
    assert env["SKYRELAY_REPLICA_ID"] == "skyrelay-eastus-0f9e8d7c6b5a"
    assert isinstance(open_sink(url, replica="r"), AzureBlobLogSink)


def test_the_flush_budget_leaves_time_to_deliver_the_response() -> None:
    assert flush_budget(None, 5.0) == 5.0
    assert flush_budget(60.0, 5.0) == 5.0
    assert flush_budget(2.0, 5.0) == pytest.approx(2.0 - DEADLINE_RESERVE_S)
    assert flush_budget(0.2, 5.0) == 0.0
    assert flush_cap_from({"SKYRELAY_INVOCATION_FLUSH_TIMEOUT_S": "1.5"}) == 1.5
    with pytest.raises(ValueError, match="SKYRELAY_INVOCATION_FLUSH_TIMEOUT_S"):
        flush_cap_from({"SKYRELAY_INVOCATION_FLUSH_TIMEOUT_S": "soon"})
