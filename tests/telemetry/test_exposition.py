"""Our Prometheus text is byte for byte what prometheus_client's ``generate_latest`` writes for the same data."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import metrics as library_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.process_collector import ProcessCollector as LibraryProcessCollector
from prometheus_client.utils import floatToGoString

from core.telemetry.exposition import CounterReading, Family, GaugeReading, format_value, render
from core.telemetry.metric_families import CounterFamily, Families, HistogramFamily
from core.telemetry.metrics import METRICS_CONTENT_TYPE, ProcessCollector

SPECIAL = (math.inf, -math.inf, math.nan, 0.0, -0.0, 1.0, -1.0, 0.1 + 0.2, 1e-9, 123456.0, 999999.9999, 1e6,
           1234567.0, 10_000_000.0, 123456789.123, 1.5e15, 1e16, 1e22, -1234567.0, -1e22, 5e-324,
           1.7976931348623157e308)
#: Label values and HELP text that need escaping, and some that look as if they might.
AWKWARD = ('plain', 'quote " inside', "back\\slash", "new\nline", 'all \\ " \n three', "ünïcode ✓", "", "tab\tcr\r",
           "\\n literal")


class Static:
    """A collector of families made beforehand (ours or the library's)."""

    def __init__(self, *families: Any) -> None:
        self.families = families

    def collect(self) -> Iterator[Any]:
        return iter(self.families)


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> float:
    """Both libraries stamp ``_created`` with ``time.time()`` when a series is made."""
    now = 1778400000.123456
    monkeypatch.setattr(time, "time", lambda: now)
    return now


def test_numbers_are_written_as_floatToGoString_writes_them() -> None:
    rng = random.Random(4)
    values = [*SPECIAL, *range(-5, 20), 2**70, *(rng.uniform(-1e9, 1e9) for _ in range(2000)),
              *(10 ** rng.uniform(-12, 30) for _ in range(2000)), *(float(rng.randrange(10**12)) for _ in range(2000))]
    for value in values:
        assert format_value(value) == floatToGoString(value), value


def test_counters_and_histograms_render_as_the_library_objects_would(frozen_clock: float) -> None:
    """Same updates, same bytes: values added in the same order, cumulative buckets, ``+Inf``, ``_count``, ``_sum``
    and the ``_created`` families after each."""
    counter, unlabelled = CounterFamily("c", "A counter.", ["b", "a"]), CounterFamily("u", "Unlabelled.")
    histogram, bare = HistogramFamily("h", "Seconds.", ["z", "a"], (0.1, 1.0, 10.0)), HistogramFamily(
        "bare", "No labels.", [], (1.0,))
    unused, never = CounterFamily("n", "None.", ["a"]), HistogramFamily("empty", "Never observed.", ["a"], (1.0,))
    theirs = CollectorRegistry()
    lib_counter = Counter("c", "A counter.", ["b", "a"], registry=theirs)
    lib_unlabelled = Counter("u", "Unlabelled.", registry=theirs)
    lib_histogram = Histogram("h", "Seconds.", ["z", "a"], buckets=(0.1, 1.0, 10.0), registry=theirs)
    lib_bare = Histogram("bare", "No labels.", buckets=(1.0,), registry=theirs)
    Counter("n", "None.", ["a"], registry=theirs)
    Histogram("empty", "Never observed.", ["a"], buckets=(1.0,), registry=theirs)
    amounts = (0.05, 0.1, 0.1 + 0.2, 1.0, 7.5, 12.0, 1e-9, 0.0, 1234567.0, 1e22, math.inf, math.nan)
    for i, amount in enumerate(amounts):
        labels = (AWKWARD[i % len(AWKWARD)], AWKWARD[(i + 1) % len(AWKWARD)])
        counter.labels(*labels).value += amount
        lib_counter.labels(*labels).inc(amount)
        unlabelled.labels().value += 1
        lib_unlabelled.inc()
        histogram.labels(*labels).observe(amount)
        lib_histogram.labels(*labels).observe(amount)
        bare.labels().observe(amount)
        lib_bare.observe(amount)

    body = render([Families([counter, unlabelled, histogram, bare, unused, never])])
    assert body == generate_latest(theirs)
    assert b'c_created{a="' in body and b'le="+Inf"' in body and b"NaN" in body


def test_created_series_are_left_out_when_the_environment_says_so(monkeypatch: pytest.MonkeyPatch,
                                                                  frozen_clock: float) -> None:
    monkeypatch.setenv("PROMETHEUS_DISABLE_CREATED_SERIES", "True")
    counter, histogram = CounterFamily("c", "A counter.", ["a"]), HistogramFamily("h", "Seconds.", ["a"], (1.0,))
    theirs = CollectorRegistry()
    lib_counter = Counter("c", "A counter.", ["a"], registry=theirs)
    lib_histogram = Histogram("h", "Seconds.", ["a"], buckets=(1.0,), registry=theirs)
    counter.labels("x").value += 2
    lib_counter.labels("x").inc(2)
    histogram.labels("x").observe(0.5)
    lib_histogram.labels("x").observe(0.5)
    library_metrics.disable_created_metrics()  # what the variable does to the library when it is imported
    try:
        expected = generate_latest(theirs)
    finally:
        library_metrics.enable_created_metrics()

    body = render([Families([counter, histogram])])
    assert body == expected
    assert b"_created" not in body


def test_readings_render_as_the_library_metric_families_would() -> None:
    """Gauges and counters read at scrape time: labels sorted by name and escaped, HELP escaped, special values,
    names outside the classic character set, a family without samples."""
    gauge = GaugeReading("g", "Gauge \\ with\nnewline.", labels=["z", "a", "m"])
    lib_gauge = GaugeMetricFamily("g", "Gauge \\ with\nnewline.", labels=["z", "a", "m"])
    for i, value in enumerate(SPECIAL):
        labels = [AWKWARD[i % len(AWKWARD)], AWKWARD[(i + 3) % len(AWKWARD)], str(i)]
        gauge.add(labels, value)
        lib_gauge.add_metric(labels, value)
    odd = GaugeReading("odd.name-1", "Odd names.", labels=["label.name", "0digit", "ok"])
    lib_odd = GaugeMetricFamily("odd.name-1", "Odd names.", labels=["label.name", "0digit", "ok"])
    odd.add(["a", "b", "c"], 1)
    lib_odd.add_metric(["a", "b", "c"], 1)
    ours: list[Family] = [gauge, odd, GaugeReading("no_samples", "Labelled, none yet.", labels=["a"])]
    theirs: list[Metric] = [lib_gauge, lib_odd, GaugeMetricFamily("no_samples", "Labelled, none yet.", labels=["a"])]
    for i, value in enumerate((0, 7, 2**40, 0.25, math.inf)):
        ours += [CounterReading(f"counter_{i}", f"Counter {i}.", value=value),
                 GaugeReading(f"gauge_{i}", "", value=value)]
        theirs += [CounterMetricFamily(f"counter_{i}", f"Counter {i}.", value=value),
                   GaugeMetricFamily(f"gauge_{i}", "", value=value)]
    registry = CollectorRegistry()
    registry.register(Static(*theirs))

    assert render([Static(*ours)]) == generate_latest(registry)


def fake_proc(root: Path, *, stat: str, limits: str, fds: int) -> Path:
    (root / "self" / "fd").mkdir(parents=True)
    (root / "stat").write_text("cpu  1 2 3\nintr 5\nbtime 1778300000\nprocesses 9\n")
    (root / "self" / "stat").write_text(stat)
    (root / "self" / "limits").write_text(limits)
    for fd in range(fds):
        (root / "self" / "fd" / str(fd)).touch()
    return root


LIMITS = ("Limit                     Soft Limit           Hard Limit           Units     \n"
          "Max cpu time              unlimited            unlimited            seconds   \n"
          "Max open files            1048576              1048576              files     \n")
#: A command name with spaces and a parenthesis, as /proc/<pid>/stat writes it.
STAT = ("4242 (python (x) y) S 1 4242 4242 0 -1 4194560 12345 0 3 0 1234 567 0 0 20 0 3 0 987654 "
        "123456789 20000 18446744073709551615 1 1 0 0 0 0 0 16781312 134234626 0 0 0 17 1 0 0 0 0 0\n")


@pytest.mark.parametrize("namespace", ["", "skyrelay_log_writer"])
def test_process_metrics_render_as_the_library_collector_would(tmp_path: Path, namespace: str) -> None:
    proc = str(fake_proc(tmp_path, stat=STAT, limits=LIMITS, fds=7))
    theirs = CollectorRegistry()
    LibraryProcessCollector(namespace=namespace, proc=proc, registry=theirs)

    body = render([ProcessCollector(namespace, proc=proc)])
    assert body == generate_latest(theirs)
    prefix = f"{namespace}_process_" if namespace else "process_"
    assert f"{prefix}open_fds 7.0\n".encode() in body and f"{prefix}max_fds 1.048576e+06\n".encode() in body


def test_process_metrics_without_proc_are_left_out(tmp_path: Path) -> None:
    assert render([ProcessCollector(proc=str(tmp_path / "missing"))]) == b""


def test_process_metrics_read_this_process() -> None:
    """In a fresh process: start time, RSS, CPU and file descriptors agree with what it can see of itself."""
    script = """
import time
started = time.time()
import json, os, resource
from core.telemetry.exposition import render
from core.telemetry.metrics import ProcessCollector
text = render([ProcessCollector()]).decode()
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
rss = int(status["VmRSS"].split()[0]) * 1024
print(json.dumps([started, text, rss, resource.getrlimit(resource.RLIMIT_NOFILE)[0], len(os.listdir("/proc/self/fd")),
                  time.process_time()]))
"""
    answer = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).parents[2])
    started, text, rss, max_fds, open_fds, cpu = json.loads(answer.stdout)
    values = {sample.name: sample.value for family in text_string_to_metric_families(text) for sample in family.samples}
    assert started - 5 < values["process_start_time_seconds"] <= started + 0.01  # clock ticks: 10 ms
    assert values["process_resident_memory_bytes"] == pytest.approx(rss, rel=0.1)
    assert values["process_virtual_memory_bytes"] > values["process_resident_memory_bytes"] > 1_000_000
    assert 0 < values["process_cpu_seconds_total"] <= cpu + 0.02
    assert values["process_max_fds"] == max_fds
    assert abs(values["process_open_fds"] - open_fds) <= 1  # listing the folder holds one open


def test_the_content_type_is_the_one_the_library_sent() -> None:
    assert METRICS_CONTENT_TYPE == CONTENT_TYPE_LATEST
