"""What each cloud's artifact installs: pyproject's dependencies and the cloud's extras, pinned to what is installed.

The serverless entries have no server of their own on Lambda (uvicorn and uvloop stay out of the zip, httptools
stays in as the upstream client's parser; functions-framework brings its own uvicorn on GCP), and Lambda's Python
runtime already carries boto3/botocore, which core imports for S3 logs and Bedrock.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

#: Extras each cloud's artifact installs besides the core dependencies.
CLOUD_EXTRAS: dict[str, tuple[str, ...]] = {
    "aws": ("lambda", "redis"),
    "gcp": ("gcp-functions", "gcp", "redis"),
    "azure": ("azure-functions", "azure", "redis"),
}
#: Left out of the Lambda zip: the runtime provides them, or nothing there runs a server.
LAMBDA_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "jmespath"})
LAMBDA_UNUSED = frozenset({"uvicorn", "uvloop"})

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass(frozen=True, slots=True)
class Requirement:
    name: str
    spec: str  # as written in pyproject.toml, marker included

    def pinned(self) -> str:
        """``name==<installed version>`` (marker kept) when installed here, else the spec as written."""
        try:
            version = metadata.version(self.name)
        except metadata.PackageNotFoundError:
            return self.spec
        head, sep, marker = self.spec.partition(";")
        extras = re.search(r"\[[^\]]*\]", head)
        pin = f"{self.name}{extras.group(0) if extras else ''}=={version}"
        return f"{pin}; {marker.strip()}" if sep else pin


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse(spec: str) -> Requirement:
    match = _NAME.match(spec)
    if not match:
        raise ValueError(f"cannot read the requirement {spec!r}")
    return Requirement(canonical(match.group(1)), spec.strip())


def project_requirements(pyproject: Path, cloud: str) -> list[Requirement]:
    """The core dependencies plus the cloud's extras, in pyproject order, without duplicates."""
    project = tomllib.loads(pyproject.read_text())["project"]
    extras: dict[str, list[str]] = project.get("optional-dependencies", {})
    specs = list(project.get("dependencies", []))
    for extra in CLOUD_EXTRAS[cloud]:
        if extra not in extras:
            raise ValueError(f"pyproject.toml has no [{extra}] extra, which the {cloud} bundle installs")
        specs.extend(extras[extra])
    seen: set[str] = set()
    out: list[Requirement] = []
    for spec in specs:
        requirement = parse(spec)
        if requirement.name not in seen:
            seen.add(requirement.name)
            out.append(requirement)
    if cloud == "aws":
        out = [r for r in out if r.name not in LAMBDA_PROVIDED | LAMBDA_UNUSED]
    return out


def requirements_txt(requirements: list[Requirement], header: str) -> str:
    return "\n".join([f"# {line}" for line in header.splitlines()] + [r.pinned() for r in requirements]) + "\n"
