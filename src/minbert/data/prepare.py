"""From a task's data config to its examples: read the splits, make missing ones, shape the training set.

read_splits     train / dev / test from their files, or (data.split) seeded stratified parts of train
prepare_train   drop excluded texts, then subsample, few-shot sample, corrupt labels (all seeded)
read_task       all of that for one task of a run, or why the task cannot train
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

from minbert.config import DataConfig, TaskConfig
from minbert.data.overlap import drop_overlap
from minbert.data.readers import Example, read_examples, subsample
from minbert.data.sampling import few_shot_sample, inject_label_noise, per_class_sample, split_examples
from minbert.errors import MinbertError

log = logging.getLogger("minbert")

Splits = tuple[list[Example], list[Example] | None, list[Example] | None]


class TaskData(NamedTuple):
    """One task's examples: the training set as prepared, dev, test, and the whole train split (a head's
    labels come from it, so a few-shot sample still knows every class)."""

    train: list[Example]
    dev: list[Example] | None
    test: list[Example] | None
    all_train: list[Example]


def read_split(data: DataConfig, split: str, require_labels: bool = True) -> list[Example] | None:
    path = getattr(data, split)
    if path is None:
        return None
    return read_file(path, data, split, require_labels)


def read_file(path: str | Path, data: DataConfig, split: str | None, require_labels: bool = True) -> list[Example]:
    """One file read as the data options say: format, columns, label separator, bad rows (`split` picks a
    split of a file that holds several, as clinc150's does)."""
    return read_examples(
        path,
        data.format,
        text_column=data.text_column,
        label_column=data.label_column,
        text_pair_column=data.text_pair_column,
        split=split,
        require_labels=require_labels,
        skip_bad_rows=data.skip_bad_rows,
        label_separator=data.label_separator,
        allow_empty_labels=data.allow_empty_labels,
    )


def read_splits(data: DataConfig, seed: int) -> Splits:
    """(all of train, dev, test): from their files, or (data.split) seeded parts of the train file."""
    train = read_split(data, "train")
    if train is None:
        raise MinbertError("no training data: set data.train (e.g. --data.train path/to/train.jsonl)")
    if data.split is not None and (data.dev is not None or data.test is not None):
        raise MinbertError(
            "data.split makes dev/test from the train file; leave data.dev and data.test unset (or drop data.split)"
        )
    return split_train(train, read_split(data, "dev"), read_split(data, "test"), data, seed)


def split_train(
    train: list[Example], dev: list[Example] | None, test: list[Example] | None, data: DataConfig, seed: int
) -> Splits:
    """The splits as given, or with data.split, seeded stratified parts of train as train/dev[/test]."""
    if data.split is None:
        return train, dev, test
    if dev is not None or test is not None:
        raise MinbertError("data.split makes dev/test from the training data; give no dev or test (or drop split)")
    split_seed = data.sample_seed if data.sample_seed is not None else seed
    parts = split_examples(train, data.split, split_seed)
    log.info("data.split %s of %s (seed %s): %s examples", data.split, data.train, split_seed, [len(p) for p in parts])
    return parts[0], parts[1] or None, (parts[2] or None) if len(parts) > 2 else None


def task_data(splits: Splits, data: DataConfig, seed: int) -> TaskData:
    """A task's examples from its splits: the training set prepared as data asks, the whole of it kept."""
    train, dev, test = splits
    return TaskData(prepare_train(train, data, seed), dev, test, train)


def prepare_train(examples: list[Example], data: DataConfig, seed: int) -> list[Example]:
    """Drop excluded texts, then subsample, few-shot sample and/or corrupt labels, as the config asks (all seeded)."""
    seed = seed if data.sample_seed is None else data.sample_seed
    if data.exclude:
        examples = exclude_texts(examples, data)
    examples = subsample(examples, data.max_train_examples, seed)
    if data.shots_per_class:
        examples = per_class_sample(examples, data.shots_per_class, seed)
        log.info(
            "shots_per_class: %d training examples, %d per class (seed %d)", len(examples), data.shots_per_class, seed
        )
    if data.few_shot:
        examples = few_shot_sample(examples, data.few_shot, seed)
        log.info("few-shot: %d training examples sampled with the label distribution (seed %d)", len(examples), seed)
    if data.label_noise:
        examples = inject_label_noise(examples, data.label_noise, seed)
        log.info("label noise: %.0f%% of training labels flipped (seed %d)", 100 * data.label_noise, seed)
    return examples


def exclude_texts(examples: list[Example], data: DataConfig) -> list[Example]:
    """data.exclude: training rows whose text is in another file are dropped, and the log says how many and which."""
    for source in data.exclude:
        held = read_examples(source.path, source.format, text_column=source.text_column, require_labels=False)
        texts = [text for e in held for text in (e.text, e.text_pair) if text is not None]
        examples, dropped = drop_overlap(examples, texts)
        shown = "; ".join(f"{e.where} {e.text!r}" for e in dropped[:3])
        log.info(
            "data.exclude %s: dropped %d training rows whose text it holds%s",
            source.path,
            len(dropped),
            f" (first: {shown})" if dropped else "",
        )
    if not examples:
        raise MinbertError(f"data.exclude dropped every training row of {data.train}; check the exclude files")
    return examples


def read_task(task: TaskConfig, seed: int, optional: bool = False) -> TaskData | str:
    """(train, dev, test) of one task, training set prepared; with `optional`, a missing train file is
    returned as the reason the task cannot train (a multitask run leaves it out) instead of an error."""
    if task.data.train is None:
        raise MinbertError(f"task {task.name!r}: no data.train; set it (--tasks.{task.name}.data.train PATH)")
    if optional and not Path(task.data.train).exists():
        return f"train file {task.data.train} not found"
    return task_data(read_splits(task.data, seed), task.data, seed)


def read_unlabelled(
    paths: list[Path], format: str | None, data: DataConfig, held_out: list[Example] | None
) -> list[Example]:
    """distill.data: extra texts (labels ignored) for the teacher to label. Texts that occur in the run's
    dev or test files (or in data.exclude) are dropped and counted, so no evaluation text is trained on."""
    format = format or data.format
    examples = read_texts(
        paths,
        format,
        text_column=data.text_column if format == data.format else None,
        skip_bad_rows=data.skip_bad_rows,
    )
    if not examples:
        raise MinbertError(f"distill.data {', '.join(map(str, paths))}: no texts in it")
    return unlabelled_texts(examples, data, held_out)


def unlabelled_texts(examples: list[Example], data: DataConfig, held_out: list[Example] | None) -> list[Example]:
    """Texts for a teacher to label, without those in the run's dev or test data (compared on letters and
    digits) or in data.exclude, the dropped ones counted: no evaluation text is ever trained on."""
    if held_out:
        examples, dropped = drop_overlap(examples, [e.text for e in held_out])
        log.info("distill.data: dropped %d texts that are in the dev or test files", len(dropped))
    return exclude_texts(examples, data) if data.exclude else examples


def read_oos(paths: list[Path], data: DataConfig, role: str) -> list[Example]:
    """Out-of-scope texts (data.oos_dev / oos_test / oos_train) in the run's format, without labels (rejection
    never scores them as classes; oos_train gets its class in run/inputs.add_oos_class). A clinc150 file gives
    its split of that role."""
    return read_texts(paths, data.format, text_column=data.text_column, role=role, skip_bad_rows=data.skip_bad_rows)


def read_texts(
    paths: list[Path],
    format: str,
    *,
    text_column: str | None = None,
    role: str | None = None,
    label: str | None = None,
    skip_bad_rows: bool = False,
) -> list[Example]:
    """The texts of files whose labels do not count, each given `label` (None: unlabelled). `role` picks a
    clinc150 file's split (oos_dev reads oos_val, ...); other formats hold one split per file."""
    split = role if format == "clinc150" else None
    return [
        Example(e.text, label, e.source, e.line, e.text_pair)
        for path in paths
        for e in read_examples(
            path, format, text_column=text_column, split=split, require_labels=False, skip_bad_rows=skip_bad_rows
        )
    ]
