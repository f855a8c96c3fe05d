"""``skyrelay bundle``: the deployable artifact of each cloud entry, built from a checkout.

    aws    a Lambda zip: core, handlers/aws (buffered handler, streaming runtime, its exec wrapper) and every
           dependency as wheels for the Lambda platform (``--arch``, ``--python-version``) — without boto3 and
           botocore, which the Lambda runtime provides; no tests; bytecode for the target Python when the build runs
           with that Python (``--no-compile``: none); reproducible bytes
    gcp    the Cloud Run functions source folder: main.py, requirements.txt, core, handlers/gcp (and its zip)
    azure  the Azure Functions app folder: host.json, function_app.py, requirements.txt, core, handlers/azure
           (and its zip, for zip deploy with remote build)

Requirements come from pyproject.toml (the dependencies plus each cloud's extras), pinned to the versions
installed where the bundle is built, so what deploys is what was tested. The artifact's size is printed at the
end; the Lambda zip is expected to stay under 10 MB.

This builds from the repository (it packages ``handlers/``, which is not part of the installed library); it is
tooling, and nothing in the gateway imports it.
"""

from __future__ import annotations

from core.bundle.build import CLOUDS, Artifact, build

__all__ = ["CLOUDS", "Artifact", "build"]
