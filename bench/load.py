"""Closed-loop load against a target: wrk with our Lua hooks, or bench/loadgen.py when wrk is missing.

wrk's Lua script (bench/wrk_hooks.lua) makes the POST and times every request itself, because wrk's built-in
percentiles add synthetic samples (coordinated-omission correction); both tools report the same JSON shape.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from processes import BENCH_DIR, PYTHON, Processes, children_cpu_s
from targets import Target, tagged_body

WRK_HOOKS = BENCH_DIR / "wrk_hooks.lua"  # per-request timing, status tally, JSON summary
BODY_TAG = "@@bench-tag@@"

# Appended after the hooks, so it can use their locals: request() now returns a body no cache has seen (run
# nonce, thread, count) and still starts the hooks' per-request timer.
UNIQUE_BODY_LUA = """
local body_head, body_tail, sent = {head}, {tail}, 0
local hooks_setup = setup
function setup(thread)
  hooks_setup(thread)
  thread:set("body_tag", {nonce} .. "-" .. #threads)
end
function request()
  sent = sent + 1
  started = now_us()
  return wrk.format(nil, nil, nil, body_head .. body_tag .. "-" .. sent .. body_tail)
end
"""


def _lua_string(text: str) -> str:
    """A Lua long-bracket literal that cannot be closed early by the text it quotes."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


def write_wrk_script(directory: Path, name: str, body: bytes, headers: dict[str, str],
                     unique_bodies: bool = False) -> Path:
    """wrk sends GETs by default: the Lua script turns every request into our POST with its headers.

    With `unique_bodies`, `body` (a chat request) is the template: each request tags its last message.
    """
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(body.decode())}"]
    lines += [f"wrk.headers[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in headers.items()]
    script = "\n".join(lines) + "\n" + WRK_HOOKS.read_text()
    if unique_bodies:
        head, tail = tagged_body(json.loads(body), BODY_TAG).decode().split(BODY_TAG)
        script += UNIQUE_BODY_LUA.format(head=_lua_string(head), tail=_lua_string(tail),
                                         nonce=_lua_string(secrets.token_hex(4)))
    path = directory / f"{name}.lua"
    path.write_text(script)
    return path


_UNIT_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6}


def parse_wrk_latency_line(output: str, pct: str) -> float | None:
    """Fallback if the done() hook printed nothing: read e.g. '99%    1.94ms' from --latency output."""
    match = re.search(rf"^\s*{re.escape(pct)}%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE)
    return float(match.group(1)) * _UNIT_US[match.group(2)] if match else None


def parse_wrk(output: str) -> dict[str, Any]:
    """The BENCH_JSON line from done(); the text summary is only a fallback."""
    for line in output.splitlines():
        if line.startswith("BENCH_JSON "):
            return dict(json.loads(line[len("BENCH_JSON "):]))
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if not rps:
        raise RuntimeError(f"could not parse wrk output:\n{output}")
    return {"rps": float(rps.group(1)), "p50_us": parse_wrk_latency_line(output, "50"),
            "p90_us": parse_wrk_latency_line(output, "90"), "p99_us": parse_wrk_latency_line(output, "99"),
            "non2xx": int(non2xx.group(1)) if non2xx else 0}


def error_count(result: dict[str, Any]) -> int:
    """Non-2xx responses plus socket errors of one load result."""
    return int(sum(result.get(k) or 0 for k in ("non2xx", "connect", "read", "write", "timeout")))


@dataclass
class LoadGen:
    """Runs one closed-loop load phase against a target with wrk, or the Python fallback."""

    procs: Processes
    workdir: Path
    cpus: set[int] | None
    use_wrk: bool
    unique_bodies: bool = False  # wrk only: tag each request's last message (see write_wrk_script)

    def run(self, target: Target, connections: int, duration: int, body: bytes) -> dict[str, Any]:
        headers = {**target.headers, "Content-Type": "application/json"}
        if self.use_wrk:
            script = write_wrk_script(self.workdir, target.name.replace(" ", "_"), body, headers,
                                      self.unique_bodies)
            # One connection per thread: the Lua hooks keep one request timer per thread.
            argv = ["wrk", f"-t{connections}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s",
                    "--latency", "-s", str(script), target.url]
        else:
            body_file = self.workdir / "body.json"
            body_file.write_bytes(body)
            argv = [PYTHON, str(BENCH_DIR / "loadgen.py"), "--url", target.url, "--connections",
                    str(connections), "--duration", str(duration), "--body-file", str(body_file)]
            argv += [arg for k, v in headers.items() for arg in ("--header", f"{k}: {v}")]
        return self._execute(argv, duration)

    def _execute(self, argv: list[str], duration: int) -> dict[str, Any]:
        """Run the load generator; its own CPU time (it is the only child reaped meanwhile) goes in the result."""
        cpu_before = children_cpu_s()
        proc = self.procs.start(argv, cpus=self.cpus, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=duration + 20)
        except subprocess.TimeoutExpired:
            self.procs.stop(proc)
            raise RuntimeError(f"load generator did not finish: {' '.join(argv[:3])}") from None
        self.procs.stop(proc)
        text = out.decode(errors="replace")
        if self.use_wrk:
            if proc.returncode != 0 or b".lua" in err:  # a broken script makes wrk send plain GETs instead
                raise RuntimeError(f"wrk failed ({proc.returncode}): {err.decode(errors='replace')[-1000:]}")
            result = parse_wrk(text)
            result["raw"] = text
        else:
            if proc.returncode != 0:
                raise RuntimeError(f"loadgen failed: {err.decode(errors='replace')[-1000:]}")
            result = json.loads(text.strip().splitlines()[-1])
        if "rps" not in result:
            seconds = result["duration_us"] / 1e6
            result["rps"] = result["requests"] / seconds if seconds else 0.0
        result["loadgen_cpu_s"] = children_cpu_s() - cpu_before
        return result
