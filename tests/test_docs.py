"""The Python shown in the README's quickstart and in docs/python.md runs as written (in a scratch folder,
with the data path pointed at the benchmark data), so the documentation cannot drift from the API."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.S)


def run_blocks(blocks: list[str], folder: Path, data_dir: Path) -> int:
    namespace: dict = {}
    before = Path.cwd()
    os.chdir(folder)
    try:
        for block in blocks:
            exec(compile(block.replace("../shared/data", str(data_dir)), "docs", "exec"), namespace)
    finally:
        os.chdir(before)
    return len(blocks)


def test_the_readme_python_quickstart_runs(tmp_path, data_dir, capsys):
    blocks = python_blocks(REPO / "README.md")
    quickstart = blocks[0]
    assert "minbert.fit(" in quickstart and len(quickstart.strip().splitlines()) <= 12
    assert run_blocks([quickstart], tmp_path, data_dir) == 1
    accuracy, label = capsys.readouterr().out.split()[-2:]
    assert float(accuracy) > 0.75 and label == "alarm_set"
    assert (tmp_path / "intent-model" / "minbert.json").is_file()


def test_every_python_block_of_the_api_guide_runs(tmp_path, data_dir):
    blocks = python_blocks(REPO / "docs" / "python.md")
    assert run_blocks(blocks, tmp_path, data_dir) == len(blocks) >= 3


def test_the_documentation_site_builds_strictly_with_generated_references(tmp_path):
    """`mkdocs build --strict`: a broken link or a page missing from the site fails; the config and format
    references are generated from the code."""
    import subprocess
    import sys

    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(REPO / "src")},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    config_page = (site / "reference" / "config" / "index.html").read_text()
    for field in ("train.lr", "data.shots_per_class", "data.unseen_labels", "oos.method", "head.kind"):
        assert field in config_page
    assert "goemotions" in (site / "reference" / "formats" / "index.html").read_text()
