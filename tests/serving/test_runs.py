"""The runs browser on hand-made run folders: what it lists, what it refuses, what it escapes."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from minbert import MinbertError
from minbert.serving.runs import create_ui_app, find_runs
from tests.conftest import REPO
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


def test_files_outside_the_folder_are_never_served_through_symlinks(folder, tmp_path_factory):
    secret = tmp_path_factory.mktemp("elsewhere") / "secret.txt"
    secret.write_text("the secret")
    run = folder / "a"
    (run / "leak.png").symlink_to(secret)
    (run / "report.md").unlink()
    (run / "report.md").symlink_to(secret)
    (run / "model" / "README.md").symlink_to(secret)
    linked = folder / "linked"
    linked.symlink_to(secret.parent, target_is_directory=True)  # a run folder that is a link out
    (secret.parent / "results.json").write_text('{"results": {}}')
    with running(create_ui_app(folder)) as url:
        assert httpx.get(f"{url}/file", params={"run": "a", "name": "leak.png"}).status_code == 404
        for page in ("run", "card"):
            reply = httpx.get(f"{url}/{page}", params={"name": "a"})
            assert reply.status_code == 200 and "the secret" not in reply.text
        assert httpx.get(f"{url}/run", params={"name": "linked"}).status_code == 404
        assert "linked" not in {row["name"] for row in httpx.get(f"{url}/api/runs").json()}


def test_a_fifo_or_a_malformed_run_is_one_unreadable_row_never_a_hang_or_a_500(folder):
    import os

    fifo_run = folder / "fifo"
    fifo_run.mkdir()
    os.mkfifo(fifo_run / "results.json")  # would block any reader until something writes to it
    bad = {
        "list": "[]",
        "dev_number": '{"results": {"dev": 5}}',
        "not_json": "{",
        "bool_metric": '{"results": {"dev": {"accuracy": true}}, "summary": {"train_seconds": "soon"}}',
    }
    for name, text in bad.items():
        (folder / name).mkdir()
        (folder / name / "results.json").write_text(text)
    (folder / "dev_number" / "config.yaml").write_text("task: 5\nmodel: [1]\n")
    (folder / "bomb").mkdir()
    (folder / "bomb" / "results.json").write_text('{"results": {}}')
    (folder / "bomb" / "config.yaml").write_text("a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n")
    (folder / "a" / "metrics.jsonl").write_text('{"event": "dev", "epoch": 1, "accuracy": 0.5}\nnot json\n[1]\n')
    with running(create_ui_app(folder)) as url:
        rows = {row["name"]: row for row in httpx.get(f"{url}/api/runs", timeout=10).json()}
        assert (
            rows["fifo"]["kind"] == "unreadable: results.json is not a regular file of at most 20 MB inside the folder"
        )
        assert rows["list"]["kind"].startswith("unreadable") and rows["not_json"]["kind"].startswith("unreadable")
        assert rows["bomb"]["kind"].startswith("unreadable: YAML aliases")
        assert rows["dev_number"]["metrics"]["dev"] is None and rows["bool_metric"]["metrics"]["dev"] is None
        assert httpx.get(f"{url}/", timeout=10).status_code == 200
        for name in ("list", "dev_number", "bool_metric", "a"):
            assert httpx.get(f"{url}/run", params={"name": name}).status_code == 200
            assert httpx.get(f"{url}/compare", params={"run": [name, "a"]}).status_code == 200
        assert httpx.get(f"{url}/curves.png", params={"run": "a", "metric": "accuracy"}).status_code == 200
        assert httpx.get(f"{url}/run", params={"name": "\x00"}).status_code == 404
        assert httpx.get(f"{url}/curves.png", params={"run": "a", "metric": "$\\frac{$"}).status_code == 200


def test_a_long_listing_never_blocks_the_server_and_a_second_one_reads_only_what_changed(tmp_path, monkeypatch):
    import threading

    from minbert.serving import runs as browser

    config = (REPO / "configs" / "massive_intent.yaml").read_text()
    for i in range(800):
        run = tmp_path / f"exp{i // 100}" / f"run{i}"
        run.mkdir(parents=True)
        (run / "results.json").write_text('{"results": {"dev": {"accuracy": 0.8}}, "summary": {}}')
        (run / "config.yaml").write_text(config)
    described = []
    slow_describe = browser.describe

    def describe(root, run):
        described.append(run)
        time.sleep(0.002)  # a slower disk: the first listing takes seconds
        return slow_describe(root, run)

    monkeypatch.setattr(browser, "describe", describe)
    with running(create_ui_app(tmp_path)) as url:
        finished: list[str] = []
        listing = threading.Thread(
            target=lambda: finished.append(str(len(httpx.get(f"{url}/api/runs", timeout=120).json())))
        )
        listing.start()
        time.sleep(0.3)
        assert httpx.get(f"{url}/health", timeout=5).status_code == 200
        assert not finished  # /health was answered while the listing was still reading runs
        listing.join()
        assert finished == ["800"] and len(described) == 800
        (tmp_path / "exp3" / "run300" / "results.json").write_text('{"results": {"dev": {"accuracy": 0.9}}}')
        rows = {r["name"]: r for r in httpx.get(f"{url}/api/runs", timeout=120).json()}
        assert len(described) == 801 and rows["exp3/run300"]["metrics"]["dev"] == 0.9  # only the changed run re-read


def test_a_loopback_server_refuses_a_host_header_naming_another_machine(folder):
    with running(create_ui_app(folder)) as url:
        assert httpx.get(f"{url}/api/runs").status_code == 200
        port = url.rsplit(":", 1)[1]
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
            assert httpx.get(f"{url}/health", headers={"Host": host}).status_code == 200
        refused = httpx.get(f"{url}/api/runs", headers={"Host": f"attacker.example:{port}"})
        assert refused.status_code == 421 and "is not this machine" in refused.json()["detail"]


def test_an_api_key_guards_every_page_but_health_and_a_browser_can_send_it(folder, tmp_path, capsys):
    """`minbert ui --api-key-file`: a browser gets a Basic challenge (its login prompt), then sends the key as
    the password; scripts send it as a bearer token. A wrong or malformed credential is refused."""
    with running(create_ui_app(folder, api_key="s3cret-key")) as url:
        assert httpx.get(f"{url}/health").status_code == 200
        for path in ("/", "/api/runs", "/run?name=a", "/file?run=a&name=learning_curves.png"):
            refused = httpx.get(url + path)
            assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic ")
        assert httpx.get(f"{url}/api/runs", auth=("anyone", "s3cret-key")).status_code == 200
        assert httpx.get(f"{url}/", headers={"Authorization": "Bearer s3cret-key"}).status_code == 200
        assert httpx.get(f"{url}/", headers={"X-API-Key": "s3cret-key"}).status_code == 200
        for bad in ("Basic !!!", "Basic " + "czNjcmV0LWtleQ==", "Bearer wrong", "Basic"):  # no colon in the second
            assert httpx.get(f"{url}/", headers={"Authorization": bad}).status_code == 401
        assert httpx.get(f"{url}/", auth=("anyone", "wrong")).status_code == 401
    key_file = tmp_path / "key"
    key_file.write_text("two words\n")
    from minbert.cli import main

    assert main(["ui", str(folder), "--api-key-file", str(key_file)]) == 2
    assert "--api-key-file" in capsys.readouterr().err
