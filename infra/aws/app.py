"""CDK app entry: ``cdk synth`` / ``cdk deploy`` run it (cdk.json), and so can ``python app.py`` without the CLI.

The pattern and every deployment choice come from context (``skyrelay:*`` keys in cdk.json, or ``-c key=value``).
Run directly, the app loads ``cdk.context.json`` itself and fails on a missing lookup instead of synthesizing
placeholders (see skyrelay_infra/app_builder.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from skyrelay_infra.app_builder import build_app, load_context_file, synth_checked


def main() -> None:
    # Under the CLI, context (cdk.context.json included) arrives through CDK_CONTEXT_JSON and the App reads it;
    # run directly, the cached lookups are loaded here.
    context = {} if "CDK_CONTEXT_JSON" in os.environ else load_context_file()
    synth_checked(build_app(context, outdir=os.environ.get("CDK_OUTDIR")))


if __name__ == "__main__":
    main()
