"""Bytecode for the Lambda zip (``skyrelay bundle --compile``).

Why: Lambda runs the code from a read-only ``/var/task``, so without ``.pyc`` files in the zip every cold start
compiles every module it imports and cannot keep the result (about a quarter of the import's instructions). The
zip therefore carries ``__pycache__/<name>.cpython-XY.pyc`` beside every ``.py`` (the sources stay, for tracebacks).

* Unchecked-hash pycs (PEP 552): the import uses them without looking at the source's mtime, which the zip does not
  keep (every entry is dated 1980), and without reading and hashing the source.
* Only for the interpreter running the build: a pyc is specific to CPython's minor version (its magic number and its
  file name), so a build whose Python is not the target refuses instead of shipping bytecode the runtime would
  ignore (it would then compile everything anyway, silently).
* ``optimize=0``: the runtime imports without ``-O``, so it reads ``<name>.cpython-XY.pyc``; a build run with
  ``-O`` still writes that file with the asserts and docstrings in.
* Reproducible: one file at a time in sorted order, in a fresh interpreter (see :data:`WORKER`), each compiled
  with the path it has on Lambda (``/var/task/...``) in place of the build folder's, so the same sources give the
  same bytes wherever and by whatever they are built. The import replaces that path with the real one when it
  loads the code.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

#: Where Lambda extracts the zip; the file name compiled into each pyc (shown only if it is loaded outside import).
TASK_ROOT = "/var/task"
#: Compiles the relative paths on stdin, in that order; prints the failures as a JSON list. It runs in a fresh
#: interpreter because marshal's output depends on the compiling process: a string is written as interned or not
#: (any object as a back-reference or not) according to what else that process holds, and the build process holds
#: whatever its caller imported — two builds of the same sources differed in ~20 pycs before this. ``-I -S``: the
#: standard library only (nothing in the bundle can shadow ``py_compile``), and no ``PYTHONPYCACHEPREFIX`` or
#: ``PYTHONOPTIMIZE`` from the build's environment (either would move or change the pycs).
WORKER = """
import json, py_compile, sys
root, task_root = sys.argv[1], sys.argv[2]
failures = []
for relative in sys.stdin.read().splitlines():
    try:
        py_compile.compile(f"{root}/{relative}", dfile=f"{task_root}/{relative}", doraise=True, optimize=0,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    except py_compile.PyCompileError as exc:
        failures.append(f"{relative}: {exc.exc_type_name}: {exc.exc_value}")
print(json.dumps(failures))
"""


class BytecodeError(RuntimeError):
    """Bytecode cannot be made for the target (the message says why)."""


def interpreter_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def check_target(python_version: str) -> None:
    """Refuse unless this interpreter writes the bytecode the Lambda runtime (CPython ``python_version``) reads:
    same implementation and minor version, and a final release (magic numbers may change before it)."""
    here = interpreter_version()
    if sys.implementation.cache_tag != f"cpython-{python_version.replace('.', '')}":
        raise BytecodeError(f"bytecode can only be written for this interpreter ({sys.implementation.name} {here}), "
                            f"not for CPython {python_version}: run the bundle with Python {python_version}")
    if sys.version_info.releaselevel != "final":
        raise BytecodeError(f"bytecode needs a final release of Python {python_version} (this is "
                            f"{sys.version.split()[0]}): a pre-release may write pycs the runtime rejects")


def compile_tree(package: Path, python_version: str) -> int:
    """Write an unchecked-hash pyc next to every ``.py`` under ``package``; returns how many. Raises if the target
    is not this interpreter or if any module does not compile (all failures in one message)."""
    check_target(python_version)
    sources = sorted(source.relative_to(package).as_posix() for source in package.rglob("*.py"))
    worker = subprocess.run([sys.executable, "-I", "-S", "-c", WORKER, str(package), TASK_ROOT],
                            input="\n".join(sources), capture_output=True, text=True, cwd=package, check=False)
    if worker.returncode != 0:
        raise BytecodeError(f"the bytecode compiler failed:\n{worker.stderr.strip()[-4000:]}")
    failures: list[str] = json.loads(worker.stdout)
    if failures:
        raise BytecodeError(f"{len(failures)} module(s) of the bundle do not compile:\n" + "\n".join(failures[:20]))
    return len(sources)
