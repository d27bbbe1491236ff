"""The Python API: fit a model on data held in memory, with no YAML and, unless asked, nothing on disk.

    import minbert
    model = minbert.Model.from_pretrained("all-MiniLM-L6-v2")        # or any Hub id: "bert-base-uncased"
    minbert.fit(model, train=(texts, labels), dev=df_dev, epochs=3)   # lists, DataFrames, datasets.Dataset
    model.predict(["wake me up at seven"])[0].label
    model.save("intent-model"); minbert.load("intent-model")

The shape follows scikit-learn (`fit` on data, `predict` / `predict_proba`, errors that say what to do),
sentence-transformers (`Model.from_pretrained`, `encode`, `save`, modules that load themselves) and SetFit
(train from a list or a `datasets.Dataset`, the model trained in place). Every option is a field of the
same typed config the YAML files fill, checked by the same rules: a flat keyword is looked up in `train`,
`model` and `data` (in that order: `epochs`, `lr`, `pooling`, `few_shot`), a section is a dict
(`oos={"method": "msp"}`, `contrastive={...}`, `distill={...}`), and a misspelt name is an error that
names it. `minbert train CONFIG` goes through the same fitting code (`run/fitting.py`), so the same
data and seed give the same numbers from Python and from the command line.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from minbert.config import (
    SINGLE_TASK,
    DataConfig,
    HeadConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    build_config,
)
from minbert.data.memory import examples_from, texts_from
from minbert.data.prepare import split_train, task_data, unlabelled_texts
from minbert.data.readers import Example
from minbert.errors import MinbertError
from minbert.model.task_model import Model
from minbert.run.directory import claim_output_dir, logged_run, start_run
from minbert.run.file_run import fit_and_write
from minbert.run.fitting import build_model, load_teacher
from minbert.run.inputs import RunData, add_oos_class
from minbert.run.result import RunResult
from minbert.training.trainer import EvaluationHook

log = logging.getLogger("minbert")

# Flat keywords are looked up in these sections, in order; every other section is given as a dict.
FLAT_SECTIONS: tuple[tuple[str, type[Any]], ...] = (
    ("train", TrainConfig),
    ("model", ModelConfig),
    ("data", DataConfig),
)
SECTIONS = ("train", "model", "data", "contrastive", "multitask", "distill", "oos", "calibration", "sweep")
# Data fields that name files: in Python the data itself is given (train=, dev=, test=, oos_dev=, ...).
FILE_FIELDS = {"train", "dev", "test", "format", "oos_dev", "oos_test", "oos_train"}
MODEL_FIELDS_OF_A_MODEL = {"checkpoint", "pooling", "max_length"}

Data = Any  # (texts, labels), a list of dicts, a pandas DataFrame, a datasets.Dataset or a list of Examples


def fit(
    model: Model | str | None,
    train: Data | Mapping[str, Data],
    dev: Data | Mapping[str, Data] | None = None,
    test: Data | Mapping[str, Data] | None = None,
    *,
    head: Mapping[str, Any] | None = None,
    tasks: Mapping[str, Mapping[str, Any]] | None = None,
    oos_dev: Data | None = None,
    oos_test: Data | None = None,
    oos_train: Data | None = None,
    distill_texts: Data | None = None,
    output_dir: str | Path | None = None,
    on_evaluate: EvaluationHook | None = None,
    **options: Any,
) -> RunResult:
    """Fine-tune `model` (a `Model`, or a checkpoint name, directory or Hub id) on `train` and return the
    trained model with its dev/test metrics.

    train / dev / test   one task's data, or {task name: data} for a multitask model
    head                 the single task's head when it is not a sentence classifier:
                         {"kind": "regression", "input": "cross" | "bi", "loss": "mse", ...}
    tasks                per-task settings of a multitask model: {"sts": {"head": {...}, "weight": 1.0}}
    oos_dev / oos_test   out-of-scope texts (with oos={"method": ...}); oos_train trains them as a class
    distill_texts        extra unlabelled texts for the teacher (distill={"teacher": DIR}) to label
    output_dir           write the run directory there (config, metrics, report, model, card, resumable
                         checkpoint); without it nothing is written to disk
    on_evaluate          called as on_evaluate(step, dev_metrics) after each dev evaluation
    **options            any config field: epochs=3, lr=1e-4, llrd=0.9, seed=1, few_shot=64,
                         calibration="temperature", oos={"method": "msp"}, contrastive={...}
    """
    multitask = isinstance(train, Mapping)
    config = fit_config(model, multitask, head, tasks, output_dir, options, list(train) if multitask else None)
    _check_extras(config, oos_dev, oos_test, oos_train, distill_texts)
    out = Path(output_dir) if output_dir is not None else None
    if out is not None:
        claim_output_dir(out, config.train)
    with logged_run(out, config.train):
        device = start_run(config, out)
        read = memory_data(config, train, dev, test, oos_dev, oos_test, oos_train, distill_texts)
        if isinstance(model, Model):
            return fit_and_write(model, config, read, out, device, on_evaluate, load_teacher(config))
        built, teacher = build_model(config)  # as `minbert train` builds it, so the numbers are the same
        return fit_and_write(built, config, read, out, device, on_evaluate, teacher)


def fit_config(
    model: Model | str | None,
    multitask: bool,
    head: Mapping[str, Any] | None,
    tasks: Mapping[str, Mapping[str, Any]] | None,
    output_dir: str | Path | None,
    options: Mapping[str, Any],
    task_names: list[str] | None = None,
) -> RunConfig:
    """The run config `fit`'s keywords describe, validated as a YAML file would be."""
    raw: dict[str, Any] = {}
    for key, value in options.items():
        section, field = _place(key)
        if field is None:
            raw[section] = value
        else:
            raw.setdefault(section, {})[field] = value
    data = raw.get("data", {})
    given_files = sorted(FILE_FIELDS & set(data))
    if given_files:
        raise MinbertError(
            f"fit(): {given_files[0]} names a file; in Python pass the data itself (train=, dev=, test=, oos_dev=, "
            "...), or use minbert.train(config) for files"
        )
    if isinstance(model, Model):
        clash = sorted(MODEL_FIELDS_OF_A_MODEL & set(raw.get("model", {})))
        if clash:
            raise MinbertError(
                f"fit(): {clash[0]} belongs to the model you passed; give it to Model.from_pretrained(...) instead"
            )
        raw.setdefault("model", {}).update(
            checkpoint=model.config.base_checkpoint or "all-MiniLM-L6-v2",
            pooling=model.config.pooling,
            max_length=model.config.max_length,
        )
    elif model is not None:
        raw.setdefault("model", {})["checkpoint"] = str(model)
    if output_dir is not None:
        raw["output_dir"] = str(output_dir)
    if multitask or head is not None:
        raw = _as_tasks(raw, head, tasks, task_names or [SINGLE_TASK])
    elif tasks:
        raise MinbertError("fit(): tasks= sets each task of a multitask model; give train as {task name: data}")
    return build_config(raw, source="fit()")


def _place(key: str) -> tuple[str, str | None]:
    """Where a keyword goes: (section, field), or (section, None) for a whole section given as a value."""
    if key in SECTIONS:
        return key, None
    for section, model in FLAT_SECTIONS:
        if key in model.model_fields:
            return section, key
    known = [*SECTIONS, *(f for _, m in FLAT_SECTIONS for f in m.model_fields)]
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {close[0]}?" if close else "; see help(minbert.fit) and the config reference"
    raise MinbertError(f"fit(): unknown option {key!r}{hint}")


def _as_tasks(
    raw: dict[str, Any], head: Mapping[str, Any] | None, tasks: Mapping[str, Mapping[str, Any]] | None, names: list[str]
) -> dict[str, Any]:
    """A config with a tasks: list, as the YAML of a multitask or pair run has: one task per name, each with
    its head (the single `head=`, or `tasks[name]`) and the data options given (sampling, columns)."""
    if head is not None and len(names) > 1:
        raise MinbertError("fit(): head= is the single task's head; give each task's as tasks={name: {'head': {...}}}")
    unknown = sorted(set(tasks or {}) - set(names))
    if unknown:
        raise MinbertError(f"fit(): tasks={{{unknown[0]!r}: ...}} names no task of train (tasks: {', '.join(names)})")
    data = raw.pop("data", {})
    model = raw.get("model", {})
    moved = sorted(set(model) & (set(HeadConfig.model_fields) | {"multilabel"}))
    if moved:
        raise MinbertError(f"fit(): {moved[0]} is a head setting here; give it in head= or tasks={{name: {{'head'}}}}")
    entries = []
    for name in names:
        entry: dict[str, Any] = {"name": name, **dict((tasks or {}).get(name, {}))}
        entry["data"] = {**data, **dict(entry.get("data", {}))}
        if head is not None:
            entry["head"] = dict(head)
        entries.append(entry)
    return {**raw, "task": "multitask", "tasks": entries}


def _check_extras(
    config: RunConfig, oos_dev: Data | None, oos_test: Data | None, oos_train: Data | None, distill_texts: Data | None
) -> None:
    """The rules the config applies to its file fields, applied to their in-memory counterparts."""
    if oos_dev is not None and config.oos.method == "none":
        raise MinbertError(
            "fit(): oos_dev texts choose the out-of-scope threshold; set oos={'method': 'msp'} (or another)"
        )
    if oos_test is not None and config.oos.method == "none" and oos_train is None:
        raise MinbertError("fit(): oos_test is scored by out-of-scope rejection (oos=) or an oos class (oos_train=)")
    if oos_train is not None and config.oos.method != "none":
        raise MinbertError("fit(): oos_train trains out-of-scope as a class; oos= rejects by a threshold: choose one")
    if distill_texts is not None and config.distill.teacher is None:
        raise MinbertError("fit(): distill_texts are labelled by a teacher; set distill={'teacher': DIR}")
    if (oos_train is not None or distill_texts is not None) and config.task == "multitask":
        raise MinbertError("fit(): oos_train and distill_texts apply to a single-task classifier")


def memory_data(
    config: RunConfig,
    train: Data | Mapping[str, Data],
    dev: Data | Mapping[str, Data] | None,
    test: Data | Mapping[str, Data] | None,
    oos_dev: Data | None,
    oos_test: Data | None,
    oos_train: Data | None,
    distill_texts: Data | None,
) -> RunData:
    """What `read_run_data` gives a file-based run, from data in memory."""
    seed = config.train.seed
    tasks = config.task_list()
    multitask = isinstance(train, Mapping)
    data = {}
    for task in tasks:
        parts = [_for_task(part, task.name, multitask) for part in (train, dev, test)]
        splits = [
            _examples(part, split, task.data) if part is not None else None
            for part, split in zip(parts, ("train", "dev", "test"), strict=True)
        ]
        if splits[0] is None:
            raise MinbertError(f"fit(): no training data for task {task.name!r}")
        data[task.name] = task_data(split_train(splits[0], splits[1], splits[2], task.data, seed), task.data, seed)
        log.info("task %s: %d train, %d dev, %d test examples", task.name, *(len(p or []) for p in data[task.name][:3]))
    first = config.data if config.task != "multitask" else tasks[0].data
    if oos_train is not None:
        add_oos_class(data, tasks[0].name, texts_from(oos_train, "oos_train", first.text_column), config.oos.label)
    unlabelled: list[Example] = []
    if distill_texts is not None:
        main = data[tasks[0].name]
        held_out = [*(main.dev or []), *(main.test or [])]
        unlabelled = unlabelled_texts(texts_from(distill_texts, "distill_texts", first.text_column), first, held_out)
    return RunData(
        tasks,
        data,
        {},
        texts_from(oos_dev, "oos_dev", first.text_column) if oos_dev is not None else [],
        texts_from(oos_test, "oos_test", first.text_column) if oos_test is not None else [],
        unlabelled,
    )


def _for_task(part: Any, name: str, multitask: bool) -> Any:
    """One task's share of a split: {task name: data} for a multitask model, the data itself otherwise."""
    if multitask and part is not None and not isinstance(part, Mapping):
        raise MinbertError(f"fit(): a multitask model takes every split as {{task name: data}} (task {name!r})")
    return part.get(name) if isinstance(part, Mapping) else part


def _examples(data: Any, split: str, options: DataConfig) -> list[Example]:
    return examples_from(
        data,
        split,
        text_column=options.text_column,
        label_column=options.label_column,
        text_pair_column=options.text_pair_column,
        label_separator=options.label_separator,
        allow_empty_labels=options.allow_empty_labels,
    )
