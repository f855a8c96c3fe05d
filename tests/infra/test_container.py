"""The container image definition: hadolint at its strictest threshold, and the properties the chart relies on."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.infra.tools import REPO_ROOT, checkov, hadolint

DOCKERFILE = REPO_ROOT / "infra" / "container" / "Dockerfile"


def test_hadolint_finds_nothing_at_info_level() -> None:
    result = subprocess.run([hadolint(), "--failure-threshold", "info", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_flag_a_careless_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install fastapi\nADD . /app\nUSER app\n")
    result = subprocess.run([hadolint(), str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert {"DL3007", "DL3013", "DL3020"} <= set(re.findall(r"DL\d{4}", result.stdout))


def test_image_is_multi_stage_slim_non_root_with_a_health_check() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM (\S+) AS (\w+)", text, re.MULTILINE)
    assert [name for _, name in stages] == ["build", "runtime"]
    assert all("slim" in image for image, _ in stages)
    assert re.search(r"^USER 10001:10001$", text, re.MULTILINE)
    assert re.search(r"^HEALTHCHECK .*\n.*/v1/health", text, re.MULTILINE)
    assert 'CMD ["skyrelay", "serve", "--host", "0.0.0.0"]' in text
    assert "COPY handlers ./handlers" in text  # `python -m handlers.aws.server` (EKS) runs from /app
    ignore = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("**") + 1:][:4] == ["!pyproject.toml", "!README.md", "!core/**", "!handlers/**"]


def test_checkov_passes_the_dockerfile() -> None:
    result = subprocess.run([checkov(), "-f", str(DOCKERFILE), "--framework", "dockerfile", "--compact", "--quiet",
                             "--skip-download"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
