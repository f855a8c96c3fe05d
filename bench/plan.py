"""What one benchmark run will do: the command-line choices plus the CPU layout derived from the machine.

A module of its own because both the servers (which CPUs, which gateway tree and path) and the phases (how long,
which transports) read it, and neither owns it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from processes import REPO_DIR


@dataclass
class Plan:
    """Command-line choices plus the CPU layout derived from the machine."""

    duration: int
    latency_duration: int
    warmup: int
    stream_requests: int
    transports: list[str]
    server_cpus: set[int] | None
    load_cpus: set[int] | None
    gateway_dir: Path = REPO_DIR
    gateway_env: dict[str, str] = field(default_factory=dict)
    all_cpus: set[int] | None = None  # the unpinned runs (two-worker scaling) may use every one of them
    gateway_path: str = "full"  # "full": key, config, routing, cache, logging; "minimal": provider headers, logging
    portkey_server: Path | None = None  # Portkey's start-server.js; None: not measured
    scaling: bool = True  # measure one and two workers
