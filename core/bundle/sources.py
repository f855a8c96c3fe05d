"""The checkout's source trees that go into every artifact: ``core`` and the cloud's part of ``handlers``."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

#: Never shipped: bytecode of this machine's Python, editor and test leftovers.
#: ``price_exports``: a checkout's own exports may be of another genai-prices; each build writes its own.
SKIPPED_NAMES = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", "tests", "README.md",
                           "price_exports"})
SKIPPED_SUFFIXES = (".pyc", ".pyo")


class CheckoutError(RuntimeError):
    """The bundle is built from a Skyrelay checkout (it needs handlers/ and pyproject.toml)."""


def checkout_root() -> Path:
    root = Path(__file__).resolve().parents[2]
    for needed in ("pyproject.toml", "handlers", "core"):
        if not (root / needed).exists():
            raise CheckoutError(f"{root} is not a Skyrelay checkout ({needed} is missing): run `skyrelay bundle` "
                                "from a clone of the repository with `pip install -e .`")
    return root


def skipped(path: Path) -> bool:
    return path.name in SKIPPED_NAMES or path.name.endswith(SKIPPED_SUFFIXES)


def copy_tree(src: Path, dst: Path, *, exclude: Iterable[str] = ()) -> None:
    """Copy ``src`` to ``dst`` without bytecode or tests; ``exclude``: file names at the top level to leave out."""
    left_out = set(exclude)

    def ignore(directory: str, names: list[str]) -> set[str]:
        top = Path(directory) == src
        return {n for n in names if skipped(Path(n)) or (top and n in left_out)}

    shutil.copytree(src, dst, ignore=ignore, dirs_exist_ok=True)


def copy_sources(root: Path, dst: Path, cloud: str, *, exclude: Iterable[str] = ()) -> None:
    """``core/`` and ``handlers/{__init__.py, common, <cloud>}`` into ``dst``."""
    copy_tree(root / "core", dst / "core")
    (dst / "handlers").mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / "handlers" / "__init__.py", dst / "handlers" / "__init__.py")
    copy_tree(root / "handlers" / "common", dst / "handlers" / "common")
    copy_tree(root / "handlers" / cloud, dst / "handlers" / cloud, exclude=exclude)


def tree_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def prune(path: Path, names: Iterable[str]) -> list[str]:
    """Delete the top-level packages ``names`` (and their dist-info) from an install folder; returns what went."""
    wanted = {n.lower().replace("-", "_") for n in names}
    removed = []
    for entry in sorted(path.iterdir()):
        stem = entry.name.split("-", 1)[0].lower() if entry.name.endswith(".dist-info") else entry.name.lower()
        if stem.replace("-", "_") in wanted:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            removed.append(entry.name)
    for cache in [p for p in path.rglob("__pycache__") if p.is_dir()]:
        shutil.rmtree(cache, ignore_errors=True)
    for compiled in [p for p in path.rglob("*") if p.name.endswith(SKIPPED_SUFFIXES)]:
        compiled.unlink(missing_ok=True)
    return removed
