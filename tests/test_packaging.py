"""minbert installs as a package, not only as a checkout: the sdist and wheel build from the tracked files,
the wheel holds every module, and installed into a fresh venv it runs outside the repository.

The fresh venv gets minbert from the wheel alone. Its dependencies come from this test venv through a
`.pth` line (nothing is downloaded), and pip resolves the wheel with each documented extra against them
offline, so a missing or misspelt requirement of an extra fails here."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

EXTRAS = ["serve", "sweep", "onnx"]  # the ones the docs and error messages tell users to install


def run(*command: str | Path, cwd: Path, timeout: int = 300) -> str:
    done = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command}: {done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """sdist + wheel built (without build isolation: no download) from a copy of the tracked files."""
    source = tmp_path_factory.mktemp("source")
    tracked = run("git", "ls-files", "-z", cwd=REPO).split("\0")
    for name in filter(None, tracked):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ".", cwd=source)
    return out


def test_the_wheel_holds_every_module_and_the_sdist_builds_again(dist):
    (wheel,) = dist.glob("minbert-*.whl")
    (sdist,) = dist.glob("minbert-*.tar.gz")
    modules = {str(p.relative_to(REPO / "src")) for p in (REPO / "src" / "minbert").rglob("*.py")}
    packed = set(zipfile.ZipFile(wheel).namelist())
    assert modules <= packed, sorted(modules - packed)
    assert "minbert/py.typed" in packed
    entry_points = next(n for n in packed if n.endswith(".dist-info/entry_points.txt"))
    assert "minbert = minbert.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"pyproject.toml", "README.md", "src/minbert/__init__.py", "src/minbert/cli.py"} <= names


def test_the_wheel_installs_with_each_extra_and_runs_outside_the_repository(dist, tmp_path):
    (wheel,) = dist.glob("minbert-*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path).strip()
    (Path(site) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [sys.executable, "-m", "pip", "--python", python, "install", "--no-index"]
    run(*pip, "--no-deps", "--ignore-installed", wheel, cwd=tmp_path)
    for extra in EXTRAS:  # resolves the extra's requirements offline against what is installed
        run(*pip, "--dry-run", f"minbert[{extra}] @ {wheel.as_uri()}", cwd=tmp_path)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert "COMMAND --help" in run(venv / "bin" / "minbert", "--help", cwd=elsewhere)
    assert "--data.label_separator" in run(venv / "bin" / "minbert", "train", "--help", cwd=elsewhere)
    where = run(python, "-c", "import minbert; print(minbert.__file__)", cwd=elsewhere)
    assert where.startswith(str(venv)), where  # the installed copy, not the checkout's src/
    quickstart = re.findall(r"```python\n(.*?)```", (REPO / "docs" / "python.md").read_text(), re.S)[0]
    run(python, "-c", quickstart + "\nassert again.predict(['wake me at five'])[0].label in labels", cwd=elsewhere)
    assert (elsewhere / "alarm-model" / "minbert.json").is_file()
    run(python, "-c", "import minbert.serving.app, minbert.sweep, minbert.model.backends", cwd=elsewhere)
