"""Few-shot sampling keeps the label distribution and is deterministic; noise flips exactly the asked fraction."""

from __future__ import annotations

import pytest

from minbert import MinbertError
from minbert.data.prepare import TaskData
from minbert.data.readers import Example, read_examples
from minbert.data.sampling import few_shot_sample, inject_label_noise, label_distribution, stratified_counts
from minbert.model.heads import HeadSpec


@pytest.fixture(scope="module")
def massive_train(data_dir):
    return read_examples(data_dir / "massive_en_us" / "train.jsonl", "massive")


def test_quotas_sum_to_n_and_follow_the_counts():
    counts = {"a": 600, "b": 300, "c": 100}
    assert stratified_counts(counts, 20) == {"a": 12, "b": 6, "c": 2}
    assert sum(stratified_counts(counts, 7).values()) == 7
    assert stratified_counts({"a": 98, "b": 1, "c": 1}, 3) == {"a": 1, "b": 1, "c": 1}


@pytest.mark.parametrize("n", [20, 100, 1000])
def test_few_shot_sample_keeps_the_distribution(massive_train, n):
    sample = few_shot_sample(massive_train, n, seed=3)
    assert len(sample) == n and len({id(e) for e in sample}) == n
    full, got = label_distribution(massive_train), label_distribution(sample)
    if n >= 1000:
        assert max(abs(full[label] - got.get(label, 0.0)) for label in full) <= 1 / n + 1e-9
    else:  # fewer examples than labels x 2: every drawn label is one of the most frequent
        assert all(label in full for label in got)
    assert sample == few_shot_sample(massive_train, n, seed=3)
    assert sample != few_shot_sample(massive_train, n, seed=4)


def test_few_shot_too_large():
    examples = [Example("t", "a", "f", 1)]
    with pytest.raises(MinbertError, match="larger than the training set"):
        few_shot_sample(examples, 5, seed=0)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.2, 0.5])
def test_noise_flips_exactly_the_fraction(massive_train, fraction):
    noisy = inject_label_noise(massive_train, fraction, seed=1)
    flipped = sum(a.label != b.label for a, b in zip(massive_train, noisy, strict=True))
    assert flipped == round(fraction * len(massive_train))
    assert [e.text for e in noisy] == [e.text for e in massive_train]
    assert noisy == inject_label_noise(massive_train, fraction, seed=1)


def test_per_class_sampling_takes_k_of_every_class_seeded_and_stable():
    from minbert.data.sampling import per_class_sample

    rows = [
        Example(f"{label} {i}", label, "train.csv", i)
        for label, n in (("a", 30), ("b", 12), ("c", 3))
        for i in range(n)
    ]
    first = per_class_sample(rows, 8, seed=5)
    counts = {label: sum(e.label == label for e in first) for label in "abc"}
    assert counts == {"a": 8, "b": 8, "c": 3}  # a class with fewer than k keeps all it has
    assert [e.text for e in first] == [e.text for e in per_class_sample(rows, 8, seed=5)]
    assert {e.text for e in first} != {e.text for e in per_class_sample(rows, 8, seed=6)}
    assert len({e.text for e in first}) == len(first)  # no row twice


def test_per_class_sampling_through_the_config(tmp_path):
    from minbert import MinbertError, load_config
    from minbert.data.prepare import read_task

    path = tmp_path / "train.jsonl"
    path.write_text("".join(f'{{"text": "t{i}", "label": "{"xyz"[i % 3]}"}}\n' for i in range(60)))
    config = load_config(None, ["--data.train", str(path), "--data.shots_per_class", "5", "--data.sample_seed", "2"])
    task = read_task(config.task_list()[0], seed=1)
    assert not isinstance(task, str)
    assert sorted(e.label for e in task.train) == ["x"] * 5 + ["y"] * 5 + ["z"] * 5 and len(task.all_train) == 60
    with pytest.raises(MinbertError, match="set one of the two"):
        load_config(None, ["--data.train", str(path), "--data.shots_per_class", "5", "--data.few_shot", "9"])


def ten_per_intent() -> tuple[list[Example], HeadSpec]:
    """640 training rows, 10 for each of 64 intents, and the classifier head they train."""
    rows = [Example(f"text {i}", f"intent{i % 64}", "train_10.csv", i) for i in range(640)]
    return rows, HeadSpec("main", labels=sorted({str(e.label) for e in rows}))


def test_small_data_gets_advice_in_the_log_and_enough_steps_do_not(caplog):
    from minbert.run.fitting import advise_small_data

    rows, spec = ten_per_intent()
    data = {"main": TaskData(rows, None, None, rows)}
    with caplog.at_level("WARNING", logger="minbert"):
        advise_small_data([spec], data, epochs=3, batch=32, patience=None)
    assert "small data (640 rows, about 10 per class) and 3 epochs give only 60 optimizer steps" in caplog.text
    assert "--train.epochs 15 with early stopping on dev (--train.patience 3)" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="minbert"):
        advise_small_data([spec], data, epochs=15, batch=32, patience=3)
    assert caplog.text == ""
    with_dev = {"main": TaskData(rows, rows[:64], None, rows)}
    with caplog.at_level("WARNING", logger="minbert"):  # early stopping on dev: judged after the fit instead
        advise_small_data([spec], with_dev, epochs=3, batch=32, patience=3)
    assert caplog.text == ""


def test_a_small_data_run_still_improving_when_its_epochs_ran_out_is_called_underfit(caplog):
    from minbert.run.fitting import advise_after_fit
    from minbert.training.trainer import FitResult

    rows, spec = ten_per_intent()
    data = {"main": TaskData(rows, rows[:64], None, rows)}
    still_rising = FitResult(
        0.6, best_step=60, best_epoch=3.0, steps=60, stopped_early=False, train_seconds=1.0, examples_seen=1920
    )
    with caplog.at_level("WARNING", logger="minbert"):
        advise_after_fit([spec], data, still_rising, "accuracy", epochs=3, batch=32)
    assert "dev accuracy still improved at the last evaluation (epoch 3 of 3)" in caplog.text
    assert "--train.epochs 15 with early stopping on dev (--train.patience 3)" in caplog.text
    peaked = FitResult(
        0.6, best_step=40, best_epoch=2.0, steps=60, stopped_early=False, train_seconds=1.0, examples_seen=1920
    )
    stopped = FitResult(
        0.6, best_step=60, best_epoch=3.0, steps=60, stopped_early=True, train_seconds=1.0, examples_seen=1920
    )
    large = {"main": TaskData(rows * 3, rows[:64], None, rows * 3)}
    caplog.clear()
    with caplog.at_level("WARNING", logger="minbert"):
        advise_after_fit([spec], data, peaked, "accuracy", epochs=3, batch=32)
        advise_after_fit([spec], data, stopped, "accuracy", epochs=3, batch=32)
        advise_after_fit([spec], large, still_rising, "accuracy", epochs=3, batch=32)
    assert caplog.text == ""
