"""A pickle planted as output_dir/checkpoint/trainer.pt must not run when a user resumes the run."""

from __future__ import annotations

import pickle

import yaml

from minbert.cli import main
from tests.training.test_resume import write_config


class Payload:
    """Unpickling this calls `open(marker, "w")`: the marker file appears if the pickle runs."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (open, (self.marker, "w"))


def test_resume_refuses_a_planted_pickle_without_running_it(tmp_path, data_dir, capsys):
    config = write_config(tmp_path, data_dir)
    output_dir = tmp_path / "run"
    (output_dir / "checkpoint").mkdir(parents=True)
    marker = tmp_path / "the-pickle-ran"
    (output_dir / "checkpoint" / "trainer.pt").write_bytes(pickle.dumps({"step": Payload(str(marker))}))
    assert main(["-q", "train", config, "--output_dir", str(output_dir), "--resume", "--train.epochs", "1"]) == 2
    assert not marker.exists()
    err = capsys.readouterr().err
    assert "trainer.pt: refused: the training checkpoint holds objects other than tensors and plain data" in err
    errors = [line for line in err.splitlines() if line.startswith("minbert: error:")]
    assert len(errors) == 1 and "Traceback" not in err  # one line, no traceback (beside the log's small-data advice)
    assert yaml.safe_load(open(config))["train"]["epochs"] == 3  # the config itself was not touched
