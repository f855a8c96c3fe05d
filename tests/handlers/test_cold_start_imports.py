"""What a serverless entry does not load on its cold start: code only some deployments or requests use is imported
by the first one that needs it (timings: ``bench/cold_start.py``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.handlers.processes import clean_env
from tests.support.emulators import ROOT

#: Not needed by a gateway without a config store, Redis or remote gateways, before its first /v1/messages request.
NOT_ON_THE_COLD_PATH = [
    "pydantic_settings",  # core.settings reads the environment itself
    "yaml",  # a config store document
    "core.config.store_file",
    "core.config.sources",
    "core.config.secrets",
    "core.config.cached_source",  # Redis
    "core.routing.redis_breaker",  # Redis
    "core.routing.remote_forwarder",  # remote gateways
    "core.api.messages_endpoint",  # the Anthropic Messages API
    "core.app",  # FastAPI, for the routes the lazy app does not serve itself
]

ENTRIES = {
    "lambda": "import handlers.aws.handler",
    "lambda-stream": "import handlers.aws.streaming",
    "functions": "sys.path.insert(0, 'handlers/gcp'); import main",
    "azure": "sys.path.insert(0, 'handlers/azure'); import function_app",
}


@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_an_entry_loads_nothing_a_plain_request_does_not_need(entry: str, tmp_path: Path) -> None:
    script = (f"import json, sys\n{ENTRIES[entry]}\n"
              "from core.config.schema import TargetConfig\n"
              f"loaded = [m for m in {NOT_ON_THE_COLD_PATH!r} if m in sys.modules]\n"
              "print(json.dumps({'loaded': loaded, 'config_validator_built': TargetConfig.__pydantic_complete__}))\n")
    env = clean_env(tmp_path, SKYRELAY_LOG_SINK="stdout://", AWS_LAMBDA_FUNCTION_NAME="skyrelay-test",
                    SKYRELAY_AZURE_AUTH_LEVEL="anonymous")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr

    report = json.loads(done.stdout.strip().splitlines()[-1])

    assert report == {"loaded": [], "config_validator_built": False}
