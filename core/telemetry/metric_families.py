"""Counters and histograms updated with plain arithmetic, exposed exactly as prometheus_client's own.

The request metrics are updated by the log writer, several times for every record. prometheus_client's
``Counter.inc`` and ``Histogram.observe`` take a lock and run checks on every call, which cost more than the rest
of turning a record into metrics. A child here is a float (a histogram: one per bucket and the sum) that the
observer adds to directly; no lock is needed because the writer and ``/metrics`` both run on the event loop.

A scrape sees what prometheus_client's ``Counter`` and ``Histogram`` would show — names, label order, ``le``
bounds, cumulative buckets, ``_count``, ``_sum``, ``_created`` (left out when ``PROMETHEUS_DISABLE_CREATED_SERIES``
says so, as the library does), and values added in the same order — written by :mod:`core.telemetry.exposition`.
The tests render both on the same updates and compare.
"""

from __future__ import annotations

import math
import os
import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence

from core.telemetry.exposition import LabelNames, format_value, header, metric_name


def _created_series_enabled() -> bool:
    """prometheus_client's own test for the ``_created`` samples (read when a family is made)."""
    return os.environ.get("PROMETHEUS_DISABLE_CREATED_SERIES", "False").lower() not in ("true", "1", "t")


class CounterChild:
    """One labelled counter; add to :attr:`value` (never a negative amount)."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()


class HistogramChild:
    __slots__ = ("_bounds", "buckets", "created", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.buckets = [0.0] * len(bounds)  # observations per bucket, not cumulative
        self.sum = 0.0
        self.created = time.time()

    def observe(self, amount: float) -> None:
        """As ``Histogram.observe``: into the sum, and into the first bucket whose bound is at least ``amount``."""
        self.sum += amount
        at = bisect_left(self._bounds, amount)
        if at < len(self._bounds) and amount <= self._bounds[at]:  # NaN falls in no bucket
            self.buckets[at] += 1


class CounterFamily:
    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], CounterChild] = {}
        self._created = _created_series_enabled()
        self._labels = LabelNames(self.labelnames)
        if not self.labelnames:
            self.labels()  # an unlabelled counter exists, at 0, from the start

    def labels(self, *values: str) -> CounterChild:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = CounterChild()
        return child

    def render(self, out: list[str]) -> None:
        total, created = metric_name(f"{self.name}_total"), metric_name(f"{self.name}_created")
        out.append(header(total, self.documentation, "counter"))
        labels = [self._labels.text(values) for values in self._children]
        for text, child in zip(labels, self._children.values(), strict=True):
            out.append(f"{total}{text} {format_value(child.value)}\n")
        if self._created:
            _render_created(out, created, self.documentation, labels, self._children.values())


class HistogramFamily:
    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        bounds = [float(b) for b in buckets]
        if not bounds or bounds != sorted(bounds) or bounds[0] < 0:
            raise ValueError("buckets must be sorted and not negative, and there must be at least one")
        self._bounds = (*bounds, math.inf) if bounds[-1] != math.inf else tuple(bounds)
        self._le = tuple(format_value(b) for b in self._bounds)
        self._children: dict[tuple[str, ...], HistogramChild] = {}
        self._created = _created_series_enabled()
        self._labels = LabelNames(self.labelnames)
        self._bucket_labels = LabelNames(self.labelnames, extra="le")

    def labels(self, *values: str) -> HistogramChild:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = HistogramChild(self._bounds)
        return child

    def render(self, out: list[str]) -> None:
        name = metric_name(self.name)
        bucket, count, total = (metric_name(f"{self.name}{suffix}") for suffix in ("_bucket", "_count", "_sum"))
        out.append(header(name, self.documentation, "histogram"))
        labels = [self._labels.text(values) for values in self._children]
        for values, text, child in zip(self._children, labels, self._children.values(), strict=True):
            before, after = self._bucket_labels.around(values)
            cumulative = 0.0
            for le, observed in zip(self._le, child.buckets, strict=True):
                cumulative += observed
                out.append(f"{bucket}{before}{le}{after} {format_value(cumulative)}\n")
            out.append(f"{count}{text} {format_value(cumulative)}\n{total}{text} {format_value(child.sum)}\n")
        if self._created:
            _render_created(out, metric_name(f"{self.name}_created"), self.documentation, labels,
                            self._children.values())


def _render_created(out: list[str], name: str, documentation: str, labels: list[str],
                    children: Iterable[CounterChild | HistogramChild]) -> None:
    """The ``_created`` samples of a family's children, as the gauge family prometheus_client writes after it."""
    rows = [f"{name}{text} {format_value(child.created)}\n" for text, child in zip(labels, children, strict=True)]
    if rows:
        out.append(header(name, documentation, "gauge"))
        out.extend(rows)


class Families:
    """The request metric families, collected in the order given."""

    def __init__(self, families: Sequence[CounterFamily | HistogramFamily]) -> None:
        self._families = tuple(families)

    def collect(self) -> Iterator[CounterFamily | HistogramFamily]:
        return iter(self._families)
