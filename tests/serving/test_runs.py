"""The runs browser on hand-made run folders: what it lists, what it refuses, what it escapes."""

from __future__ import annotations

import json

import httpx
import pytest

from minbert import MinbertError
from minbert.serving.runs import create_ui_app, find_runs
from tests.serving.test_app import running


def make_run(folder, name, accuracy, report="# A run\n\n![Learning curves](learning_curves.png)\n"):
    run = folder / name
    run.mkdir(parents=True)
    results = {"results": {"dev": {"accuracy": accuracy}, "test": {"accuracy": accuracy - 0.01, "ece": 0.02}}}
    (run / "results.json").write_text(json.dumps(results | {"summary": {"train_seconds": 12.5}}))
    (run / "config.yaml").write_text("task: classification\nmodel: {checkpoint: all-MiniLM-L6-v2}\n")
    (run / "report.md").write_text(report)
    (run / "learning_curves.png").write_bytes(b"\x89PNG fake")
    events = [
        {"event": "dev", "step": s, "epoch": s / 10, "accuracy": accuracy * s / 30, "loss": 1.0} for s in (10, 20, 30)
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (run / "model").mkdir()
    (run / "model" / "results.json").write_text("{}")  # inside a model directory: not a run
    return run


@pytest.fixture
def folder(tmp_path):
    make_run(tmp_path, "a", 0.81)
    make_run(tmp_path / "experiment" / "recipe", "seed1", 0.87, report="# B\n\n<script>alert(1)</script>\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.png").write_bytes(b"secret")
    return tmp_path


def test_runs_are_found_at_any_depth_and_described(folder):
    rows = {row.name: row for row in find_runs(folder)}
    assert set(rows) == {"a", "experiment/recipe/seed1"}
    assert rows["a"].metrics["dev"] == 0.81 and rows["a"].metrics["test ECE"] == 0.02
    assert rows["a"].checkpoint == "all-MiniLM-L6-v2" and rows["a"].train_seconds == 12.5


def test_pages_escape_html_refuse_other_paths_and_compare(folder):
    with running(create_ui_app(folder)) as url:
        listed = httpx.get(f"{url}/api/runs").json()
        assert {r["name"] for r in listed} == {"a", "experiment/recipe/seed1"}
        assert str(folder) not in httpx.get(f"{url}/api/runs").text  # names only, never host paths
        report = httpx.get(f"{url}/run", params={"name": "experiment/recipe/seed1"}).text
        assert "<script>alert(1)</script>" not in report and "&lt;script&gt;" in report
        page = httpx.get(f"{url}/run", params={"name": "a"}).text
        assert 'src="file?run=a&amp;name=learning_curves.png"' in page
        assert httpx.get(f"{url}/file", params={"run": "a", "name": "learning_curves.png"}).content == b"\x89PNG fake"
        for params in (
            {"run": "a", "name": "../outside/secret.png"},
            {"run": "../outside", "name": "secret.png"},
            {"run": "a", "name": "results.json"},
        ):
            assert httpx.get(f"{url}/file", params=params).status_code == 404
        assert httpx.get(f"{url}/run", params={"name": "../../etc"}).status_code == 404
        compare = httpx.get(f"{url}/compare", params=[("run", "a"), ("run", "experiment/recipe/seed1")]).text
        assert "Dev accuracy by epoch" in compare and "test accuracy" in compare
        curves = httpx.get(f"{url}/curves.png", params=[("run", "a"), ("metric", "accuracy")])
        assert curves.headers["content-type"] == "image/png" and curves.content[:4] == b"\x89PNG"


def test_a_missing_folder_is_one_clear_error(tmp_path):
    with pytest.raises(MinbertError, match="not a directory of runs"):
        create_ui_app(tmp_path / "nope")
