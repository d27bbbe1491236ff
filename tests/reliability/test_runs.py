"""An output_dir holding an earlier run is not silently overwritten; a failed run says why in train.log;
keep_checkpoint keeps one however short the run."""

from __future__ import annotations

import pytest
import yaml

from minbert import MinbertError, load_config, train
from minbert.cli import main
from tests.training.test_resume import write_config

pytestmark = pytest.mark.slow


def one_epoch(config: str, output_dir, *extra: str):
    return load_config(
        config, ["--output_dir", str(output_dir), "--train.epochs", "1", "--train.eval_every", "0", *extra]
    )


def test_a_used_output_dir_is_refused_unless_overwrite_or_resume(tmp_path, data_dir, capsys):
    config = write_config(tmp_path, data_dir)
    out = tmp_path / "run"
    first = train(one_epoch(config, out))
    before = (out / "config.yaml").read_text()
    assert main(["-q", "train", config, "--output_dir", str(out), "--train.epochs", "1", "--train.lr", "3e-5"]) == 2
    err = capsys.readouterr().err
    assert (
        "holds an earlier run (results.json, model, config.yaml, metrics.jsonl, report.md, train.log, per_class.json)"
        in err
    )
    assert "pass --overwrite to replace it" in err
    assert (out / "config.yaml").read_text() == before  # nothing was rewritten
    again = train(one_epoch(config, out, "--train.overwrite", "true", "--train.lr", "3e-5"))
    assert again.summary["steps"] == first.summary["steps"] and "lr: 3.0e-05" in (out / "config.yaml").read_text()


def test_overwrite_removes_the_old_model_first_and_a_failure_is_logged(tmp_path, data_dir):
    config = write_config(tmp_path, data_dir)
    out = tmp_path / "run"
    train(one_epoch(config, out))
    raw = yaml.safe_load(open(config))
    raw["data"]["dev"] = str(tmp_path / "missing.jsonl")
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(MinbertError, match="missing.jsonl: data file not found"):
        train(one_epoch(str(tmp_path / "broken.yaml"), out, "--train.overwrite", "true"))
    assert not (out / "model").exists()  # the old model is not left beside the new config
    log = (out / "train.log").read_text()
    assert "ERROR" in log and "run failed: MinbertError" in log and "missing.jsonl: data file not found" in log
    train(one_epoch(config, out))  # only the failed run's config and log are there: reused without --overwrite
    assert (out / "model" / "minbert.json").is_file()


def test_keep_checkpoint_keeps_one_on_a_run_shorter_than_the_interval(tmp_path, data_dir):
    config = write_config(tmp_path, data_dir)
    train(
        one_epoch(
            config,
            tmp_path / "run",
            "--train.keep_checkpoint",
            "true",
            "--train.checkpoint_interval_s",
            "3600",
            "--train.checkpoint_every",
            "0",
        )
    )
    assert (tmp_path / "run" / "checkpoint" / "trainer.pt").is_file()


def test_overwrite_removes_only_what_a_minbert_run_wrote(tmp_path):
    from minbert.config import TrainConfig
    from minbert.run.directory import MARKER, claim_output_dir

    overwrite = TrainConfig(overwrite=True)
    stranger = tmp_path / "holiday"
    stranger.mkdir()
    for name in ("config.yaml", "holiday_photo.png", "notes.txt", "confusion_beach.png"):
        (stranger / name).write_text(name)
    with pytest.raises(MinbertError, match="holds files that no minbert run wrote .config.yaml, confusion_beach.png"):
        claim_output_dir(stranger, overwrite)
    assert sorted(p.name for p in stranger.iterdir()) == [
        "config.yaml",
        "confusion_beach.png",
        "holiday_photo.png",
        "notes.txt",
    ]

    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    for name in (MARKER, "results.json", "config.yaml", "learning_curves.png", "confusion_test.png", "notes.txt"):
        (run / name).write_text("x")
    (run / "my_photo.png").write_text("mine")
    claim_output_dir(run, overwrite)
    assert sorted(p.name for p in run.iterdir()) == [MARKER, "my_photo.png", "notes.txt"]

    with pytest.raises(MinbertError, match="is inside the run it reads"):
        claim_output_dir(run / "model", overwrite, source=run)
    with pytest.raises(MinbertError, match="is inside the run it reads"):
        claim_output_dir(run / "deeper" / "out", overwrite, source=run)
