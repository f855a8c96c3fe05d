"""Builds one cloud's artifact (see :mod:`core.bundle`) and reports its size."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.bundle.bytecode import BytecodeError, check_target, compile_tree
from core.bundle.requirements import LAMBDA_PROVIDED, Requirement, project_requirements, requirements_txt
from core.bundle.sources import checkout_root, copy_sources, prune, tree_size

CLOUDS = ("aws", "gcp", "azure")
#: ``--arch`` → the machine name in manylinux platform tags.
ARCHES = {"x86_64": "x86_64", "arm64": "aarch64"}
#: Entry files copied to the artifact's top level (where each platform looks for them).
TOP_LEVEL = {"gcp": ("main.py",), "azure": ("function_app.py", "host.json"), "aws": ()}
#: Written into every folder this tool creates, so a rebuild only ever deletes its own output.
MARKER = ".skyrelay-bundle"
#: Fixed timestamp for every zip entry: the same sources give the same bytes.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

Progress = Callable[[str], None]


class BundleError(RuntimeError):
    """The artifact could not be built (the message says why)."""


@dataclass(frozen=True, slots=True)
class Artifact:
    cloud: str
    path: Path
    size: int  # bytes: the zip (aws), or the folder (gcp, azure)
    unpacked_size: int
    requirements: tuple[str, ...]
    left_out: tuple[str, ...] = ()
    archive: Path | None = None  # gcp, azure: the folder as a zip, for uploads that take one


def print_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build(cloud: str, out: Path, *, arch: str = "x86_64", python_version: str = "3.12",
          compile_bytecode: bool | None = None, progress: Progress = print_progress) -> Artifact:
    """``compile_bytecode`` (aws only): ship bytecode for the target Python — Lambda cannot write it (its code
    folder is read-only), so without it every cold start compiles every module it imports. It needs this
    interpreter to be the target's version: ``True`` refuses otherwise (:class:`BundleError`, see
    :mod:`core.bundle.bytecode`); ``None``, the default, compiles when it is and says why not when it is not;
    ``False`` never compiles."""
    if cloud not in CLOUDS:
        raise BundleError(f"unknown cloud {cloud!r}: choose one of {', '.join(CLOUDS)}")
    root = checkout_root()
    try:
        requirements = project_requirements(root / "pyproject.toml", cloud)
    except (ValueError, KeyError) as exc:
        raise BundleError(f"pyproject.toml: {exc}") from None
    if cloud == "aws":
        if compile_bytecode is not False:
            try:
                check_target(python_version)  # before the install, not after it
            except BytecodeError as exc:
                if compile_bytecode:
                    raise BundleError(str(exc)) from None
                progress(f"[aws] no bytecode in this zip (slower cold starts): {exc}")
                compile_bytecode = False
        return _lambda_zip(root, out, requirements, arch, python_version, compile_bytecode is not False, progress)
    return _source_folder(root, out, cloud, requirements, progress)


def lambda_platforms(arch: str, python_version: str) -> list[str]:
    """Wheel platform tags the Lambda runtime accepts: Amazon Linux 2023 (glibc 2.34) runs Python 3.12 and
    newer, Amazon Linux 2 (glibc 2.26) the older ones."""
    machine = ARCHES.get(arch)
    if machine is None:
        raise BundleError(f"unknown architecture {arch!r}: choose x86_64 or arm64")
    major, _, minor = python_version.partition(".")
    glibc = ["2_34", "2_31", "2_28", "2_27", "2_26"] if (int(major), int(minor or 0)) >= (3, 12) else ["2_26"]
    return [*(f"manylinux_{g}_{machine}" for g in glibc), f"manylinux_2_24_{machine}", f"manylinux2014_{machine}"]


def _fresh(path: Path) -> None:
    """Empty ``path`` for a rebuild — only if this tool made it (or it is empty)."""
    if path.exists():
        if any(path.iterdir()) and not (path / MARKER).exists():
            raise BundleError(f"{path} exists and was not made by `skyrelay bundle`: choose another --out")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / MARKER).write_text("built by skyrelay bundle; deleted on the next build\n")


def _lambda_zip(root: Path, out: Path, requirements: list[Requirement], arch: str, python_version: str,
                compile_bytecode: bool, progress: Progress) -> Artifact:
    work = out / "aws"
    _fresh(work)
    package = work / "package"
    platforms = lambda_platforms(arch, python_version)
    pins = [r.pinned() for r in requirements]
    progress(f"[aws 1/4] installing {len(pins)} requirements as cp{python_version.replace('.', '')} wheels for "
             f"{platforms[0]} (boto3/botocore left to the Lambda runtime)")
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
               "--target", str(package), "--implementation", "cp", "--python-version", python_version,
               "--only-binary=:all:", "--cache-dir", str(root / ".cache" / "pip"),
               *(arg for tag in platforms for arg in ("--platform", tag)), *pins]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BundleError(f"pip could not install the Lambda dependencies:\n{result.stderr.strip()[-4000:]}")
    progress("[aws 2/4] adding core and handlers/aws, and the price table's export")
    copy_sources(root, package, "aws")
    ship_price_export(package)
    progress("[aws 3/4] pruning bytecode, console scripts and runtime-provided packages")
    shutil.rmtree(package / "bin", ignore_errors=True)
    left_out = prune(package, LAMBDA_PROVIDED)
    if compile_bytecode:
        progress(f"[aws 3/4] compiling bytecode for Python {python_version} (unchecked-hash .pyc)")
        try:
            compiled = compile_tree(package, python_version)
        except BytecodeError as exc:
            raise BundleError(str(exc)) from None
        progress(f"[aws 3/4] {compiled} modules compiled")
    name = f"skyrelay-lambda-{arch}-py{python_version}.zip"  # the name the CDK app looks for, bytecode or not
    progress(f"[aws 4/4] zipping {name}")
    zip_path = work / name
    write_zip(package, zip_path)
    artifact = Artifact("aws", zip_path, zip_path.stat().st_size, tree_size(package), tuple(pins), tuple(left_out))
    progress(f"aws: {zip_path} {_mb(artifact.size)} zipped, {_mb(artifact.unpacked_size)} unpacked")
    return artifact


def write_zip(src: Path, dst: Path) -> None:
    """Deflate-9, sorted entries, fixed timestamps; executables (the streaming exec wrapper) keep their mode."""
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in sorted(p for p in src.rglob("*") if p.is_file() and p.name != MARKER):
            info = zipfile.ZipInfo(path.relative_to(src).as_posix(), date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o100000 | (0o755 if os.access(path, os.X_OK) else 0o644)) << 16
            archive.writestr(info, path.read_bytes(), compresslevel=9)


def _source_folder(root: Path, out: Path, cloud: str, requirements: list[Requirement],
                   progress: Progress) -> Artifact:
    folder = out / cloud
    _fresh(folder)
    entries = TOP_LEVEL[cloud]
    progress(f"[{cloud} 1/3] copying {', '.join(entries)}, core and handlers/{cloud}")
    copy_sources(root, folder, cloud, exclude=entries)
    ship_price_export(folder)
    for entry in entries:
        shutil.copy2(root / "handlers" / cloud / entry, folder / entry)
    progress(f"[{cloud} 2/3] writing requirements.txt ({len(requirements)} pinned requirements)")
    header = (f"Skyrelay {cloud} entry, written by `skyrelay bundle --cloud {cloud}`.\n"
              "Pinned to the versions the bundle was built and tested with; the platform's build installs them.")
    (folder / "requirements.txt").write_text(requirements_txt(requirements, header))
    archive = out / f"skyrelay-{cloud}.zip"
    progress(f"[{cloud} 3/3] zipping {archive.name}")
    write_zip(folder, archive)
    size = tree_size(folder)
    artifact = Artifact(cloud, folder, size, size, tuple(r.pinned() for r in requirements), archive=archive)
    progress(f"{cloud}: {folder} {_mb(size)} of sources, zipped {archive} {_mb(archive.stat().st_size)} "
             "(dependencies are installed by the platform's build)")
    return artifact


def ship_price_export(tree: Path) -> None:
    """The price table as plain JSON, in the bundle's ``core/telemetry/price_exports``: the deployed gateway then
    prices records without importing genai-prices and building its table on every cold start (see
    :mod:`core.telemetry.price_export`). Built from the genai-prices installed here, the version the bundle pins."""
    target = tree / "core" / "telemetry" / "price_exports"
    result = subprocess.run([sys.executable, "-m", "core.telemetry.price_export", "--write-dir", str(target)],
                            capture_output=True, text=True, check=False, cwd=checkout_root())
    if result.returncode != 0:
        raise BundleError(f"could not export the price table:\n{result.stderr.strip()[-2000:]}")


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.2f} MB"
