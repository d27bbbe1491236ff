"""What a file-based run reads: every task's splits, the out-of-scope texts and the distillation texts,
as the in-memory `RunData` that fitting takes (the Python API builds the same from lists and frames)."""

from __future__ import annotations

import logging
from typing import NamedTuple

from minbert.config import RunConfig, TaskConfig
from minbert.data.labels import label_names
from minbert.data.prepare import TaskData, read_oos, read_task, read_unlabelled
from minbert.data.readers import Example
from minbert.errors import MinbertError
from minbert.model.heads import HeadSpec
from minbert.tasks.specs import split_unseen

log = logging.getLogger("minbert")


class RunData(NamedTuple):
    """What a run trains and scores on: the tasks that can train and their examples, why the others cannot,
    the out-of-scope dev and test texts, and the extra texts a teacher labels (distill.data)."""

    tasks: list[TaskConfig]
    data: dict[str, TaskData]
    skipped: dict[str, str]
    oos_dev: list[Example]
    oos_test: list[Example]
    unlabelled: list[Example] = []
    unseen: dict[str, dict[str, list[Example]]] = {}  # task -> split -> rows scored as misses (count_wrong)


def partition_unseen(read: RunData, specs: list[HeadSpec]) -> RunData:
    """data.unseen_labels applied to every task's dev and test rows whose labels training never saw: error keeps
    them (the head refuses them, naming the row), skip drops them, count_wrong sets them apart to be scored as
    misses; both log how many."""
    policies = {t.name: t.data.unseen_labels for t in read.tasks}
    data = dict(read.data)
    unseen: dict[str, dict[str, list[Example]]] = {}
    for spec in specs:
        policy = policies.get(spec.name, "error")
        if policy == "error":
            continue
        task = data[spec.name]
        parts: dict[str, list[Example] | None] = {"dev": task.dev, "test": task.test}
        for split, rows in parts.items():
            if not rows:
                continue
            seen, other = split_unseen(spec, rows)
            if other:
                names = sorted({label for e in other for label in label_names(e) if label not in spec.labels})
                log.warning(
                    "task %s: %d %s rows have labels training never saw (%s%s); data.unseen_labels %s: %s",
                    spec.name,
                    len(other),
                    split,
                    ", ".join(names[:5]),
                    ", ..." if len(names) > 5 else "",
                    policy,
                    "left out" if policy == "skip" else "scored as misses",
                )
                if policy == "count_wrong":
                    unseen.setdefault(spec.name, {})[split] = other
            parts[split] = seen or None
        data[spec.name] = task._replace(dev=parts["dev"], test=parts["test"])
    return read._replace(data=data, unseen=unseen)


def read_tasks(config: RunConfig, seed: int) -> tuple[list[TaskConfig], dict[str, TaskData], dict[str, str]]:
    """The tasks that can train, their examples, and why the others cannot (multitask runs only)."""
    multitask = config.task == "multitask"
    data: dict[str, TaskData] = {}
    skipped: dict[str, str] = {}
    for task in config.task_list():
        read = read_task(task, seed, optional=multitask)
        if isinstance(read, str):
            log.warning(
                "task %s: %s; it is left out of this run (fix tasks.%s.data.train, or remove the task)",
                task.name,
                read,
                task.name,
            )
            skipped[task.name] = read
            continue
        data[task.name] = read
        log.info("task %s: %d train, %d dev, %d test examples", task.name, *(len(part or []) for part in read[:3]))
    if not data:
        raise MinbertError(f"no task has training data: {'; '.join(f'{k}: {v}' for k, v in skipped.items())}")
    return [t for t in config.task_list() if t.name in data], data, skipped


def add_oos_class(data: dict[str, TaskData], task: str, texts: list[Example], label: str) -> None:
    """The "oos as a class" baseline: out-of-scope texts trained as one more class of the task."""
    extra = [Example(e.text, label, e.source, e.line) for e in texts]
    main = data[task]
    data[task] = main._replace(train=[*main.train, *extra], all_train=[*main.all_train, *extra])
    log.info("data.oos_train: %d out-of-scope texts trained as class %r", len(extra), label)


def read_run_data(config: RunConfig, seed: int, distill_texts: bool = True) -> RunData:
    """Every file the config names, read and prepared (a refit reads no distillation texts)."""
    tasks, data, skipped = read_tasks(config, seed)
    if config.data.oos_train:  # the "oos as a class" baseline: one more class to train
        add_oos_class(data, tasks[0].name, read_oos(config.data.oos_train, config.data, "oos_train"), config.oos.label)
    oos_dev = read_oos(config.data.oos_dev, config.data, "oos_dev") if config.data.oos_dev else []
    oos_test = read_oos(config.data.oos_test, config.data, "oos_test") if config.data.oos_test else []
    unlabelled = []
    if config.distill.data and distill_texts:
        first = data[tasks[0].name]
        held_out = [*(first.dev or []), *(first.test or [])]
        unlabelled = read_unlabelled(config.distill.data, config.distill.format, config.data, held_out)
    return RunData(tasks, data, skipped, oos_dev, oos_test, unlabelled)
