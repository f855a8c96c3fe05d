"""``skyrelay bundle --compile``: the Lambda zip carries a valid unchecked-hash pyc for every module, for the Python
it targets, and the handler's import from the extracted, read-only zip runs on those pycs alone — nothing compiled
from source, nothing written. Compiling is reproducible and refuses a target that is not this interpreter."""

from __future__ import annotations

import importlib
import importlib.util
import json
import marshal
import subprocess
import sys
import zipfile
from pathlib import Path
from types import CodeType
from typing import Any

import pytest

from core.bundle.build import BundleError, build, write_zip
from core.bundle.bytecode import TASK_ROOT, BytecodeError, compile_tree
from tests.handlers.processes import clean_env

LOCAL_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
OTHER_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor + 1}"
TAG = sys.implementation.cache_tag
#: Lambda's limit for a zip uploaded directly (the plain zip is held to 10 MB by test_bundle.py).
LAMBDA_DIRECT_UPLOAD_LIMIT = 50_000_000
#: Imports both Lambda entries, recording every source file compiled on the way (the ``compile`` audit event, which
#: importlib's source_to_code raises and a pyc load does not), and reports each module loaded from the task root.
PROBE = """
import json, os, sys
task = os.getcwd() + os.sep
compiled = []
sys.addaudithook(lambda event, args: compiled.append(args[1]) if event == "compile" and str(args[1]).startswith(task)
                 else None)
import handlers.aws.handler, handlers.aws.streaming
loaded = {name: {"cached": m.__spec__.cached, "loader": type(m.__loader__).__name__}
          for name, m in list(sys.modules.items()) if str(getattr(m, "__file__", "")).startswith(task)
          and m.__file__.endswith(".py")}
print(json.dumps({"compiled": compiled, "loaded": loaded, "dont_write_bytecode": sys.flags.dont_write_bytecode}))
"""


def pyc_name(source: str) -> str:
    folder, _, name = source.rpartition("/")
    return f"{folder}/__pycache__/{name[:-3]}.{TAG}.pyc" if folder else f"__pycache__/{name[:-3]}.{TAG}.pyc"


def check_pyc(pyc: bytes, source: bytes, relative: str) -> None:
    """A pyc this interpreter loads without touching the source (PEP 552 header), for exactly this source."""
    assert pyc[:4] == importlib.util.MAGIC_NUMBER, relative
    assert int.from_bytes(pyc[4:8], "little") == 0b01, relative  # hash-based, check_source off: unchecked
    assert pyc[8:16] == importlib.util.source_hash(source), relative
    code = marshal.loads(pyc[16:])
    assert isinstance(code, CodeType) and code.co_filename == f"{TASK_ROOT}/{relative}", relative


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns)
            for p in [root, *root.rglob("*")]}


def set_writable(root: Path, writable: bool) -> None:
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode | 0o200 if writable else mode & ~0o222)


def probe(task: Path, home: Path) -> dict[str, Any]:
    env = clean_env(home, PYTHONPATH=str(task), SKYRELAY_LOG_SINK="stdout://")
    for name in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX", "PYTHONOPTIMIZE"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-S", "-c", PROBE], cwd=task, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def small_package(root: Path) -> Path:
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("SEPARATORS = (':', ', ', 'a b')\n")
    (root / "pkg" / "sub" / "__init__.py").write_text("")
    (root / "pkg" / "sub" / "mod.py").write_text("def f(x):\n    return x in {'alpha', 'beta', 'gamma'}\n")
    (root / "top.py").write_text("import json\nVALUE = json.dumps({'k': [1.5, 2]})\n")
    return root


def test_compiled_trees_are_the_same_bytes_wherever_they_are_built(tmp_path: Path) -> None:
    first, second = small_package(tmp_path / "a"), small_package(tmp_path / "somewhere" / "else")

    assert compile_tree(first, LOCAL_PYTHON) == 4
    assert compile_tree(second, LOCAL_PYTHON) == 4
    write_zip(first, tmp_path / "a.zip")
    write_zip(second, tmp_path / "b.zip")

    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    for source in sorted(first.rglob("*.py")):
        relative = source.relative_to(first).as_posix()
        pyc = (first / pyc_name(relative)).read_bytes()
        check_pyc(pyc, source.read_bytes(), relative)
        assert str(tmp_path).encode() not in pyc


def test_bytecode_for_another_python_is_refused_before_anything_is_installed(tmp_path: Path) -> None:
    with pytest.raises(BytecodeError, match=f"not for CPython {OTHER_PYTHON}"):
        compile_tree(small_package(tmp_path / "p"), OTHER_PYTHON)
    assert not list((tmp_path / "p").rglob("*.pyc"))
    with pytest.raises(BundleError, match=f"run the bundle with Python {OTHER_PYTHON}"):
        build("aws", tmp_path / "out", python_version=OTHER_PYTHON, compile_bytecode=True, progress=lambda _: None)
    assert not (tmp_path / "out").exists()


def test_by_default_bytecode_is_shipped_only_for_the_python_that_runs_the_build(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No flag: a build under another Python than the target's still makes a zip, without bytecode, and says why."""
    bundle_build = importlib.import_module("core.bundle.build")  # the module (the package exports its function)
    chosen: list[bool] = []
    monkeypatch.setattr(bundle_build, "_lambda_zip", lambda *args: chosen.append(args[5]))
    said: list[str] = []
    build("aws", tmp_path / "out", python_version=OTHER_PYTHON, progress=said.append)
    build("aws", tmp_path / "out", python_version=LOCAL_PYTHON, progress=said.append)
    build("aws", tmp_path / "out", python_version=LOCAL_PYTHON, compile_bytecode=False, progress=said.append)
    assert chosen == [False, True, False]
    assert len(said) == 1 and "no bytecode" in said[0] and f"run the bundle with Python {OTHER_PYTHON}" in said[0]


def test_a_module_that_does_not_compile_is_named(tmp_path: Path) -> None:
    package = small_package(tmp_path / "p")
    (package / "pkg" / "broken.py").write_text("def f(:\n")

    with pytest.raises(BytecodeError, match=r"1 module\(s\) of the bundle do not compile:\npkg/broken.py: "):
        compile_tree(package, LOCAL_PYTHON)


@pytest.mark.slow
def test_the_compiled_lambda_zip_imports_from_its_pycs_alone(tmp_path: Path) -> None:
    # no flag: the build's Python is the target's, so the zip carries bytecode by default
    command = ["bundle", "--cloud", "aws", "--out", str(tmp_path / "out"), "--python-version", LOCAL_PYTHON]
    built = subprocess.run([sys.executable, "-m", "core.cli", *command], capture_output=True, text=True, check=False,
                           timeout=600)
    assert built.returncode == 0, built.stderr
    artifact = Path(built.stdout.split("\t")[0])
    assert artifact.name == f"skyrelay-lambda-x86_64-py{LOCAL_PYTHON}.zip"  # the name the CDK app looks for
    assert artifact.stat().st_size <= LAMBDA_DIRECT_UPLOAD_LIMIT

    with zipfile.ZipFile(artifact) as archive:
        names = set(archive.namelist())
        sources = sorted(n for n in names if n.endswith(".py"))
        pycs = {n for n in names if n.endswith(".pyc")}
        assert len(sources) > 500 and {"core/app.py", "handlers/aws/handler.py", "mangum/adapter.py"} <= set(sources)
        assert pycs == {pyc_name(s) for s in sources}  # one for every module, none without its source
        for source in sources:
            check_pyc(archive.read(pyc_name(source)), archive.read(source), source)
        archive.extractall(tmp_path / "task")

    task = tmp_path / "task"
    set_writable(task, False)  # as /var/task; root can still write, so the snapshot below is what proves it
    before = snapshot(task)
    try:
        result = probe(task, tmp_path)
        assert snapshot(task) == before  # no pyc written or rewritten
        assert result["compiled"] == [] and result["dont_write_bytecode"] == 0
        loaded = result["loaded"]
        assert {"core.service", "handlers.aws.handler", "handlers.aws.streaming", "mangum", "pydantic"} <= set(loaded)
        for name, module in loaded.items():  # loaded by the source loader, which read the shipped pyc
            assert module["loader"] == "SourceFileLoader" and Path(module["cached"]).is_file(), name

        # The control: without its pyc, a module is compiled from source, and the probe sees it.
        set_writable(task, True)
        (task / pyc_name("handlers/aws/handler.py")).unlink()
        assert probe(task, tmp_path)["compiled"] == [str(task / "handlers" / "aws" / "handler.py")]
    finally:
        set_writable(task, True)
