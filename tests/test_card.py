"""The model card: written by every run, rebuilt by `minbert card`, every number from the run's files."""

from __future__ import annotations

import json

import pytest
import yaml

from minbert import MinbertError, load_config, train
from minbert.card import card
from minbert.cli import main
from minbert.model.task_model import load

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_dir):
    folder = tmp_path_factory.mktemp("card")
    rows = (data_dir / "massive_en_us" / "train.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (folder / "train.jsonl").write_text("".join(rows[:300]))
    (folder / "dev.jsonl").write_text("".join(rows[300:360]))
    config = {
        "output_dir": str(folder / "intents"),
        "data": {"train": str(folder / "train.jsonl"), "dev": str(folder / "dev.jsonl"), "format": "massive"},
        "model": {"max_length": 32, "hidden_size": 0},
        "train": {"freeze": "encoder", "epochs": 5, "lr": 3e-3, "progress": False},
        "calibration": "temperature",
    }
    (folder / "run.yaml").write_text(yaml.safe_dump(config))
    return train(load_config(folder / "run.yaml"))


def test_every_run_writes_a_card_whose_numbers_are_the_runs(run):
    text = (run.output_dir / "model" / "README.md").read_text()
    front = yaml.safe_load(text.split("---", 2)[1])
    assert front["library_name"] == "minbert" and front["base_model"] == "all-MiniLM-L6-v2"
    assert front["license"] == "apache-2.0" and front["datasets"] == ["AmazonScience/massive"]
    dev = {m["type"]: m["value"] for m in front["model-index"][0]["results"][0]["metrics"]}
    assert dev["accuracy"] == round(run.results["dev"]["accuracy"], 4)
    assert f"{run.results['dev']['macro_f1']:.4f}" in text
    assert "| train | " in text and "| 300 |" in text and "The five weakest classes on dev" in text
    assert f"softmax temperature {run.summary['temperature']:.3f}" in text
    assert "no out-of-scope rejection" in text and "minbert predict intents" in text
    assert load(run.output_dir).labels == run.model.labels  # the card does not disturb the saved model


def test_minbert_card_rebuilds_the_same_card_and_refuses_an_unfinished_run(run, tmp_path, capsys):
    before = (run.output_dir / "model" / "README.md").read_text()
    (run.output_dir / "model" / "README.md").unlink()
    assert main(["card", str(run.output_dir)]) == 0
    assert (run.output_dir / "model" / "README.md").read_text() == before == card(run.output_dir)
    with pytest.raises(MinbertError, match="not a finished minbert run \\(results.json, config.yaml"):
        card(tmp_path)
    json.loads((run.output_dir / "results.json").read_text())  # untouched
