"""The Prometheus text format that ``GET /metrics`` returns, written here rather than by prometheus_client.

Importing prometheus_client loads its HTTP servers, push-gateway client and codecs (http.server, wsgiref,
urllib.request, email, gzip, lzma…) even when only its text is wanted: 2.2 MiB of private memory in every log
writer process and 1.3 MiB in every worker. The bytes are those its ``generate_latest`` (0.26) writes for the same
data — the tests render both and compare:

- every family gets ``# HELP`` and ``# TYPE``, even without samples; HELP escapes ``\\`` and newlines;
- a counter ``x`` is written as ``x_total``, and its ``x_created`` samples follow as a gauge family of their own
  with the same HELP;
- labels are written sorted by name; their values escape ``\\``, newlines and ``"``;
- numbers are written as :func:`format_value` says;
- a metric or label name outside the classic character set has each other character written as ``_``.

:data:`CONTENT_TYPE` is the one the gateway has always sent: prometheus_client's ``CONTENT_TYPE_LATEST``, text
format 1.0.0 — 0.0.4 plus quoted UTF-8 names, which names written as above never need.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import ClassVar, Protocol

CONTENT_TYPE = "text/plain; version=1.0.0; charset=utf-8"

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class Family(Protocol):
    """A metric family: writes its HELP, TYPE and sample lines."""

    def render(self, out: list[str]) -> None: ...


class Collector(Protocol):
    """Yields families when Prometheus scrapes."""

    def collect(self) -> Iterable[Family]: ...


def render(collectors: Iterable[Collector]) -> bytes:
    """The body of ``GET /metrics``: every family of every collector, in order."""
    out: list[str] = []
    for collector in collectors:
        for family in collector.collect():
            family.render(out)
    return "".join(out).encode()


def format_value(value: float) -> str:
    """A sample value or ``le`` bound as prometheus_client's ``floatToGoString`` writes it: ``+Inf``, ``-Inf``,
    ``NaN``, otherwise Python's ``repr`` of the float (``1.0``, ``1e-09``), except that positive values with more
    than six digits before the point switch to an exponent as Go does (``1234567.0`` is ``1.234567e+06``)."""
    value = float(value)
    if -1e6 < value < 1e6:  # most values: fewer than seven digits before the point
        return repr(value)
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if math.isnan(value):
        return "NaN"
    text = repr(value)
    dot = text.find(".")
    if value > 0 and dot > 6:
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1:]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


def escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def escape_label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def metric_name(name: str) -> str:
    """``name``, or with ``_`` for each character outside ``[a-zA-Z_:]`` (and digits after the first)."""
    if not name or _METRIC_NAME.match(name):
        return name
    return "".join(c if _name_char(c, i) or c == ":" else "_" for i, c in enumerate(name))


def label_name(name: str) -> str:
    """``name``, or with ``_`` for each character outside ``[a-zA-Z_]`` (and digits after the first)."""
    if not name or _LABEL_NAME.match(name):
        return name
    return "".join(c if _name_char(c, i) else "_" for i, c in enumerate(name))


def _name_char(c: str, i: int) -> bool:
    return "a" <= c <= "z" or "A" <= c <= "Z" or c == "_" or ("0" <= c <= "9" and i > 0)


def header(name: str, documentation: str, kind: str) -> str:
    """The ``# HELP`` and ``# TYPE`` lines of a family (``name`` already as :func:`metric_name` writes it)."""
    return f"# HELP {name} {escape_help(documentation)}\n# TYPE {name} {kind}\n"


class LabelNames:
    """How a family writes its label values: in braces, sorted by label name, escaped.

    ``extra``: one more label (a histogram's ``le``) whose value :meth:`around` leaves a gap for.
    """

    __slots__ = ("_at", "_extra", "_names", "_order")

    def __init__(self, names: Sequence[str], extra: str = "") -> None:
        self._order = sorted(range(len(names)), key=names.__getitem__)
        self._names = tuple(label_name(names[i]) for i in self._order)
        self._extra = label_name(extra)
        self._at = sum(1 for i in self._order if names[i] < extra)

    def pairs(self, values: Sequence[str]) -> list[str]:
        return [f'{name}="{escape_label_value(values[i])}"' for name, i in zip(self._names, self._order, strict=True)]

    def text(self, values: Sequence[str]) -> str:
        """``{a="1",b="2"}``, or nothing for a family without labels."""
        return "{" + ",".join(self.pairs(values)) + "}" if self._order else ""

    def around(self, values: Sequence[str]) -> tuple[str, str]:
        """What comes before and after the extra label's value: ``{a="1",le="`` and ``",b="2"}``."""
        pairs = self.pairs(values)
        before, after = ",".join(pairs[:self._at]), ",".join(pairs[self._at:])
        return "{" + before + ("," if before else "") + self._extra + '="', '"' + ("," if after else "") + after + "}"


class Reading:
    """A family of values read at scrape time (pipeline state, /proc): a gauge, or a counter (``name`` without
    ``_total``, which it is written with). Give ``value`` for a family without labels, or call :meth:`add`."""

    kind: ClassVar[str]

    def __init__(self, name: str, documentation: str, *, labels: Sequence[str] = (),
                 value: float | None = None) -> None:
        self.name = metric_name(name + "_total" if self.kind == "counter" else name)
        self.documentation = documentation
        self._labels = LabelNames(labels)
        self._samples: list[tuple[Sequence[str], float]] = []
        if value is not None:
            self.add((), value)

    def add(self, values: Sequence[str], value: float) -> None:
        self._samples.append((values, value))

    def render(self, out: list[str]) -> None:
        out.append(header(self.name, self.documentation, self.kind))
        for values, value in self._samples:
            out.append(f"{self.name}{self._labels.text(values)} {format_value(value)}\n")


class GaugeReading(Reading):
    kind = "gauge"


class CounterReading(Reading):
    kind = "counter"
