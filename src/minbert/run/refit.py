"""`minbert refit`: a finished run's model with its post-hoc steps fitted anew, written as a new run."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from minbert.card import write_card
from minbert.config import load_config
from minbert.errors import MinbertError
from minbert.model.task_model import Model
from minbert.run.directory import claim_output_dir, close_log, log_to_file, start_run, write_results
from minbert.run.fitting import selection_metric
from minbert.run.inputs import partition_unseen, read_run_data
from minbert.run.posthoc import conclude
from minbert.run.report import write_run_report
from minbert.run.result import RunResult
from minbert.tasks.posthoc import clear_posthoc
from minbert.training.metrics_log import MetricsLog

# What `refit` may change: the post-hoc settings (and where the new run goes); anything else means training again.
REFIT_FIELDS = ("output_dir", "calibration", "oos.", "data.oos_dev", "data.oos_test", "model.multilabel_threshold")
REFIT_TRAIN_FIELDS = ("overwrite", "eval_batch_size", "threads", "progress", "device")


def refit(source: str | Path, overrides: Sequence[str]) -> RunResult:
    """A finished run's model with its post-hoc steps fitted anew (calibration, out-of-scope method and threshold,
    multilabel thresholds), written as a new run directory (`--output_dir`) without training again. The source
    run is left as it was; the new run's config is the source's with the overrides, which may change only those
    steps' settings."""
    source = Path(source)
    if not (source / "config.yaml").is_file() or not (source / "model").is_dir():
        raise MinbertError(f"{source}: not a finished run directory (config.yaml and model/); give a run's output_dir")
    before = load_config(source / "config.yaml")
    config = load_config(source / "config.yaml", overrides)
    changed = sorted(set(_leaves(before.model_dump(mode="json"))) ^ set(_leaves(config.model_dump(mode="json"))))
    refused = [
        key.split("=")[0]
        for key in changed
        if not key.startswith(REFIT_FIELDS)
        and not any(key.startswith(f"train.{f}") for f in REFIT_TRAIN_FIELDS)
        and not (key.startswith("tasks.") and ".head.multilabel_threshold" in key)
    ]
    if refused:
        raise MinbertError(
            f"refit fits post-hoc steps on the trained model; {refused[0]} changes the training: train a new run instead"
        )
    output_dir = Path(config.output_dir)
    if output_dir.resolve() == source.resolve():
        raise MinbertError(f"refit writes a new run; give another --output_dir than {source}")
    earlier = _earlier_summary(source)  # checked before anything is written: a bad source leaves no new folder
    claim_output_dir(output_dir, config.train, source=source)
    handler = log_to_file(output_dir)
    try:
        start_run(config, output_dir)
        read = read_run_data(config, config.train.seed, distill_texts=False)
        model = Model.load(source / "model")
        specs = [model.spec(name) for name in model.tasks]
        read = partition_unseen(read, specs)
        for spec in specs:
            clear_posthoc(model, spec)
        if (source / "metrics.jsonl").is_file():  # the learning curves of the training it reuses
            shutil.copyfile(source / "metrics.jsonl", output_dir / "metrics.jsonl")
        metrics_log = MetricsLog(output_dir / "metrics.jsonl", append=True)
        try:
            posthoc, evaluations, results, rejection = conclude(
                model, specs, read, config, metrics_log, earlier.get("steps", 0)
            )
        finally:
            metrics_log.close()
        model.save(output_dir / "model")
        summary = {k: v for k, v in earlier.items() if not k.endswith(POSTHOC_SUMMARY_KEYS)}
        summary |= {k: v for k, v in posthoc.items() if not k.startswith("dev_") or k == "dev_ece_before_calibration"}
        summary["refitted_from"] = str(source)
        write_results(output_dir, results, summary)
        write_run_report(config, selection_metric(config), output_dir, specs, evaluations, results, summary, rejection)
        write_card(output_dir)
        return RunResult(output_dir, model, results, summary)
    finally:
        close_log(handler)


def _earlier_summary(source: Path) -> dict[str, Any]:
    """The trained run's summary from its results.json, or a one-line error when that file is damaged."""
    try:
        written = json.loads((source / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise MinbertError(f"{source / 'results.json'}: cannot be read ({e}); is the run damaged?") from None
    summary = written.get("summary", {}) if isinstance(written, dict) else None
    if not isinstance(summary, dict):
        raise MinbertError(f"{source / 'results.json'}: does not hold what a minbert run writes; is the run damaged?")
    return summary


# The summary keys a run's post-hoc steps write; a refit replaces them.
POSTHOC_SUMMARY_KEYS = (
    *("temperature", "dev_ece_before_calibration", "dev_ece", "oos_method", "oos_threshold", "multilabel_threshold"),
)


def _leaves(nested: Any, prefix: str = "") -> list[str]:
    """{'train': {'lr': 1}} -> ['train.lr=1']; tasks by name, so a refit compares like with like."""
    if isinstance(nested, dict):
        return [leaf for k, v in nested.items() for leaf in _leaves(v, f"{prefix}{k}.")]
    if isinstance(nested, list) and nested and all(isinstance(t, dict) and "name" in t for t in nested):
        return [leaf for t in nested for leaf in _leaves(t, f"{prefix}{t['name']}.")]
    return [f"{prefix.rstrip('.')}={json.dumps(nested)}"]
