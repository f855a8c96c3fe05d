"""A batch of serialised records holds about what its JSON weighs.

orjson returns bytes that keep its whole output buffer (16 KiB for a 1.4 KB record); a batch keeps up to
``log_batch_max_records`` lines until it is written, so the builder hands out exact-size copies.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from core.settings import Settings
from core.telemetry.setup import build_telemetry
from tests.telemetry.test_process_writer import entry


def test_a_full_batch_of_lines_costs_about_its_json(tmp_path: Path) -> None:
    telemetry = build_telemetry(Settings(log_sink=f"file://{tmp_path}", log_spill_max_bytes=0))
    build = telemetry.pipeline._builder.build  # type: ignore[attr-defined]  # the inline pipeline's builder
    entries = [entry(i) for i in range(501)]
    build(entries.pop(0))  # price table and caches warm before measuring
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        lines = [build(entries.pop()) for _ in range(len(entries) - 1)]  # each entry freed once built
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    json_bytes = sum(len(line) for line in lines)
    assert json_bytes > 500 * 700  # realistic records (bodies, headers, cost)
    assert held < 1.5 * json_bytes + 500 * 200, (held, json_bytes)
