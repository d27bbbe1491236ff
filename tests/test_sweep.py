"""`minbert sweep`: real Optuna trials (frozen-encoder probes on a MASSIVE slice: seconds each)."""

from __future__ import annotations

import csv

import optuna
import pytest
import yaml

from minbert import MinbertError, load_config
from minbert.cli import main
from minbert.sweep import run_sweep


@pytest.fixture
def sweep_config(tmp_path, data_dir):
    rows = (data_dir / "massive_en_us" / "train.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (tmp_path / "train.jsonl").write_text("".join(rows[:300]), encoding="utf-8")
    (tmp_path / "dev.jsonl").write_text("".join(rows[300:400]), encoding="utf-8")
    config = {
        "output_dir": str(tmp_path / "sweep"),
        "data": {"train": str(tmp_path / "train.jsonl"), "dev": str(tmp_path / "dev.jsonl"), "format": "massive"},
        "model": {"max_length": 32},
        "train": {
            "freeze": "encoder",
            "epochs": 4,
            "batch_size": 32,
            "progress": False,
            "seed": 3,
            "eval_before": False,
        },
        "sweep": {
            "trials": 3,
            "params": {
                "train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
                "model.hidden_size": {"type": "categorical", "choices": [0, 64]},
            },
        },
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_sweep_runs_trials_stores_the_study_and_reports(sweep_config, tmp_path, capsys):
    result = run_sweep(load_config(sweep_config))
    out = tmp_path / "sweep"
    assert result.trials == 3 and (out / "sweep.db").is_file() and (out / "sweep.png").is_file()
    with (out / "trials.csv").open() as handle:
        trials = list(csv.DictReader(handle))
    assert len(trials) == 3 and {"train.lr", "model.hidden_size", "dev_accuracy"} <= set(trials[0])
    values = [float(t["dev_accuracy"]) for t in trials if t["state"] == "complete"]
    assert result.best_value == max(values)
    study = optuna.load_study(study_name="sweep", storage=f"sqlite:///{out / 'sweep.db'}")
    assert all(
        t.intermediate_values for t in study.trials
    )  # each trial reported its dev metric per epoch (for pruning)
    best = study.best_trial.number
    kept = [p.parent.name for p in out.glob("trial_*/model")]
    assert kept == [f"trial_{best:03d}"]  # only the best trial keeps its model
    assert main(["sweep", str(sweep_config), "--trials", "1"]) == 0  # a second call adds to the stored study
    assert "4 trials" in capsys.readouterr().out


def test_sweep_config_errors_are_clear(sweep_config):
    raw = yaml.safe_load(sweep_config.read_text())
    raw["sweep"]["params"] = {"model.hidden_size": {"type": "categorical"}}
    sweep_config.write_text(yaml.safe_dump(raw))
    with pytest.raises(MinbertError, match="categorical parameter needs choices"):
        load_config(sweep_config)
    raw["sweep"]["params"] = {"train.lrr": {"type": "float", "low": 1e-4, "high": 1e-3}}
    sweep_config.write_text(yaml.safe_dump(raw))
    with pytest.raises(MinbertError, match="'train.lrr' is not a config field; did you mean train.lr"):
        run_sweep(load_config(sweep_config))
    raw["sweep"]["params"] = {}
    sweep_config.write_text(yaml.safe_dump(raw))
    with pytest.raises(MinbertError, match="sweep.params is empty"):
        run_sweep(load_config(sweep_config))


def test_an_unreachable_study_database_is_one_clear_error(sweep_config):
    raw = yaml.safe_load(sweep_config.read_text())
    raw["sweep"]["storage"] = "sqlite:////nonexistent-folder/sweep.db"
    sweep_config.write_text(yaml.safe_dump(raw))
    with pytest.raises(
        MinbertError, match="sweep.storage sqlite:////nonexistent-folder/sweep.db: cannot open the study"
    ):
        run_sweep(load_config(sweep_config))


def test_workers_sharing_a_study_get_different_sampler_seeds(sweep_config):
    from minbert.sweep import sampler_seed

    config = load_config(sweep_config)
    assert sampler_seed(config) == 3  # a lone worker: train.seed
    shared = load_config(sweep_config, ["--sweep.storage", "postgresql://db/x"])
    assert {
        sampler_seed(load_config(sweep_config, ["--sweep.storage", "postgresql://db/x", "--sweep.worker", str(i)]))
        for i in range(3)
    } == {3, 4, 5}
    assert sampler_seed(shared) != 3  # unset: seeded by the process, never the shared train.seed
