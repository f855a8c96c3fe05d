"""A bounded soak in the suite: bench/soak.py, shorter (the full 1,000 clients x 60 s run is `python bench/soak.py`).

Many concurrent streams against one `skyrelay serve` worker, then: no errors and no truncated streams, peak RSS
bounded, no file descriptors or asyncio tasks left behind, and one log record per request after SIGTERM.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = 300
DURATION_S = 15
PEAK_RSS_LIMIT_MIB = 400


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_concurrent_streams_soak_without_errors_or_leaks() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), "--json", "--clients", str(CLIENTS), "--duration",
         str(DURATION_S), "--warmup", "3", "--chunks", "10", "--interval", "0.2"],
        capture_output=True, text=True, timeout=170, cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    print(json.dumps(result, indent=1))  # the figures, for the log of the run (pytest -s)
    shutil.rmtree(str(result["work_dir"]), ignore_errors=True)

    assert result["streams_completed"] >= CLIENTS
    assert result["statuses"] == {"200": result["streams_completed"]}
    assert result["client_errors"] == {} and result["truncated_streams"] == 0
    assert result["rss_peak_mib"] < PEAK_RSS_LIMIT_MIB
    assert result["fds_after"] <= result["fds_before"] + 5, "file descriptors leaked"
    assert result["tasks_after"] <= result["tasks_before"] + 1, "asyncio tasks leaked"
    assert result["log_records"] == result["requests_sent"], "log records lost"
