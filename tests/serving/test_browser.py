"""The pages in a real browser: headless Chromium (Debian's, driven by Playwright) types a sentence into the
model page and reads the label; the runs page lists a folder's runs, opens one and compares two.

CI installs Debian's chromium (.ci/run); elsewhere the test skips when /usr/bin/chromium is missing, saying so.
MINBERT_SCREENSHOTS=DIR saves a PNG of each page there (docs/screenshots.py takes the same pages of real runs).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from minbert import load, load_config, train
from minbert.serving.app import create_app
from tests.serving.test_app import running

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("MINBERT_CHROMIUM", "/usr/bin/chromium")
# As root in a container, without a GPU, on a machine whose network is closed: no sandbox, no background fetches.
FLAGS = [
    *("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"),
    *("--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"),
]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; .ci/run installs Debian's chromium for this test")
        pytest.skip(f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium; .ci/run does it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir):
    """Two small MASSIVE intent runs (a frozen encoder's head on 1,500 rows; two learning rates) in one folder."""
    folder = tmp_path_factory.mktemp("runs")
    massive = data_dir / "massive_en_us"
    for name, lr in (("massive_lr3e-3", 3e-3), ("massive_lr1e-3", 1e-3)):
        raw = {
            "output_dir": str(folder / name),
            "data": {
                "train": str(massive / "train.jsonl"),
                "dev": str(massive / "validation.jsonl"),
                "format": "massive",
                "max_train_examples": 1500,
            },
            "model": {"max_length": 32, "hidden_size": 0},
            "train": {"freeze": "encoder", "epochs": 8, "lr": lr, "progress": False, "seed": 1},
        }
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(raw))
        train(load_config(folder / f"{name}.yaml"))
    return folder


def shot(page, name: str) -> None:
    target = os.environ.get("MINBERT_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(target) / name), full_page=True)


def test_a_typed_sentence_gets_the_models_label_on_the_page(browser, runs):
    run = runs / "massive_lr3e-3"
    expected = load(run).predict(["wake me up at seven tomorrow"])[0]
    with running(create_app(run, runs_dir=runs)) as url:
        page = browser.new_page()
        page.goto(url + "/")
        page.fill("#first", "wake me up at seven tomorrow")
        page.click("#go")
        label = page.wait_for_selector("#out .label", timeout=30_000)
        assert label.inner_text() == expected.label
        bars = page.query_selector_all("#out .bar")
        assert len(bars) == 5 and expected.label in bars[0].inner_text()
        shot(page, "page.png")
        page.close()


def test_the_runs_page_lists_opens_and_compares_runs(browser, runs):
    with running(create_app(runs / "massive_lr3e-3", runs_dir=runs)) as url:
        page = browser.new_page()
        page.goto(url + "/runs")
        names = [cell.inner_text() for cell in page.query_selector_all("#runs tbody tr td:nth-child(2)")]
        assert sorted(names) == ["massive_lr1e-3", "massive_lr3e-3"]
        page.click("#runs th:has-text('dev')")  # sort by dev accuracy, best first
        sorted_first = page.query_selector("#runs tbody tr td:nth-child(2)").inner_text()
        best = max(
            names,
            key=lambda n: float(yaml.safe_load((runs / n / "results.json").read_text())["results"]["dev"]["accuracy"]),
        )
        assert sorted_first == best
        shot(page, "runs.png")
        for box in page.query_selector_all("input.pick"):
            box.check()
        page.click("text=Compare the ticked runs")
        page.wait_for_selector("img[alt='dev curves']")
        assert page.evaluate("document.querySelector(\"img[alt='dev curves']\").naturalWidth") > 300
        assert page.query_selector("text=dev accuracy") is not None
        shot(page, "compare.png")
        page.goto(url + "/runs/run?name=massive_lr3e-3")
        page.wait_for_selector("img[alt='Learning curves']")
        assert page.evaluate("document.querySelector(\"img[alt='Learning curves']\").naturalWidth") > 300
        assert "Confusion matrix" in page.content()
        shot(page, "run.png")
        page.click("text=model card")
        assert page.wait_for_selector("h1").inner_text().startswith("massive_lr3e-3")
        assert "library_name: minbert" in page.inner_text("pre")  # the front matter, shown as it is
        page.close()
