"""Pair tasks and multitask training: heads, losses, samplers, config, and a real end-to-end run."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest
import torch
import yaml

from minbert import MinbertError, load, load_config, train
from minbert.cli import main
from minbert.data.readers import Example, read_examples
from minbert.data.sampling import split_examples
from minbert.model.encoder import Encoder
from minbert.model.heads import HeadSpec
from minbert.model.task_model import Model, ModelDescription
from minbert.tasks.head_task import HeadTask, targets_of
from minbert.tasks.multitask import MultitaskTask, overall_score
from minbert.training.losses import cosent
from minbert.training.task_sampling import task_schedule, task_weights

PAIRS = [
    ("A man is playing a guitar.", "A man plays the guitar."),
    ("A cat sleeps on the sofa.", "Stock markets fell sharply today."),
]


def tiny_model(tokenizer, *specs: HeadSpec, projection: int = 0) -> Model:
    return Model(
        Encoder.from_pretrained(),
        tokenizer,
        ModelDescription(heads=list(specs), pooling="mean", projection_size=projection),
    )


def test_cross_pairs_carry_token_types(tokenizer):
    ((ids, types),) = tokenizer.ids_with_types([PAIRS[0]])
    sep = tokenizer.backend.token_to_id("[SEP]")
    first_sep = ids.index(sep)
    assert ids[0] == tokenizer.backend.token_to_id("[CLS]") and ids[-1] == sep
    assert set(types[: first_sep + 1]) == {0} and set(types[first_sep + 1 :]) == {1}
    batch = tokenizer.pad([ids], [types])
    assert batch.token_type_ids[0].tolist() == types


def test_head_shapes_for_single_cross_and_bi(tokenizer):
    model = tiny_model(
        tokenizer,
        HeadSpec("single", labels=["a", "b", "c"]),
        HeadSpec("cross", input="cross", loss="bce", labels=["0", "1"]),
        HeadSpec("bi", input="bi", labels=["0", "1"]),
        HeadSpec("cosine", kind="regression", input="bi", features="cosine", loss="cosent", target_range=[0, 5]),
        projection=32,
    ).eval()
    texts = [a for a, _ in PAIRS]
    assert model.raw_outputs("single", texts).shape == (2, 3)
    assert model.raw_outputs("cross", PAIRS).shape == (2,)
    assert model.raw_outputs("bi", PAIRS).shape == (2, 2)
    cosine = model.raw_outputs("cosine", PAIRS)
    assert cosine.shape == (2,) and bool((cosine.abs() <= 1 + 1e-6).all())
    assert model.predict(PAIRS, task="cosine") == pytest.approx(
        (5 * cosine).tolist(), abs=1e-5
    )  # cosine scaled to [0, 5]
    probabilities = model.predict(PAIRS, task="cross")[0].probabilities
    assert set(probabilities) == {"0", "1"} and sum(probabilities.values()) == pytest.approx(1.0)
    assert model.encode(texts).shape == (2, 32)


def test_bi_outputs_do_not_depend_on_batch_order(tokenizer):
    model = tiny_model(tokenizer, HeadSpec("bi", kind="regression", input="bi", features="cosine", loss="mse")).eval()
    forward = model.raw_outputs("bi", PAIRS)
    backward = model.raw_outputs("bi", PAIRS[::-1])
    assert torch.allclose(forward, backward.flip(0), atol=1e-5)
    assert forward[0] > 0.5 > forward[1]  # the pretrained encoder: the paraphrase is close, the unrelated pair is not


def test_head_specs_reject_impossible_combinations():
    with pytest.raises(MinbertError, match="bce needs exactly 2 labels"):
        HeadSpec("t", loss="bce", labels=["a", "b", "c"])
    with pytest.raises(MinbertError, match="cosine"):
        HeadSpec("t", input="single", features="cosine", kind="regression", loss="mse")
    with pytest.raises(MinbertError, match="regression head"):
        HeadSpec("t", kind="regression", loss="ce")


def test_cosent_matches_hand_computation():
    scores = torch.tensor([0.9, 0.2, 0.5])
    targets = torch.tensor([1.0, 0.0, 0.5])
    # pairs with target_i > target_j: (0,1), (0,2), (2,1); terms exp(20 * (s_j - s_i))
    terms = [20 * (0.2 - 0.9), 20 * (0.5 - 0.9), 20 * (0.2 - 0.5)]
    expected = math.log(1 + sum(math.exp(t) for t in terms))
    assert cosent(scores, targets).item() == pytest.approx(expected, rel=1e-4)
    wrong_order = cosent(torch.tensor([0.1, 0.9, 0.5]), targets)
    assert wrong_order.item() > cosent(scores, targets).item()
    assert cosent(torch.tensor([0.3, 0.3]), torch.tensor([1.0, 1.0])).item() == 0.0  # no ranked pair: log(1)


def test_samplers_follow_their_proportions():
    sizes = [300, 100, 600]
    assert task_schedule(sizes, "round_robin", 9) == [0, 1, 2] * 3
    drawn = Counter(task_schedule(sizes, "proportional", 20000, seed=3))
    for task, size in enumerate(sizes):
        assert drawn[task] / 20000 == pytest.approx(size / 1000, abs=0.015)
    assert task_schedule(sizes, "proportional", 50, seed=3) == task_schedule(sizes, "proportional", 50, seed=3)
    assert task_weights(sizes, "annealed", epoch=0, epochs=5) == pytest.approx([0.3, 0.1, 0.6])
    last = task_weights(sizes, "annealed", epoch=4, epochs=5)  # alpha 0.2: much flatter
    assert max(last) - min(last) < 0.15 and last[2] > last[0] > last[1]


def test_multitask_epoch_mixes_tasks_and_weights_losses(tokenizer):
    sst = [Example(f"sentence number {i} is {'good' if i % 2 else 'bad'}", str(i % 2), "t", i) for i in range(40)]
    sts = [Example(f"a {i}", str(i % 5), "t", i, text_pair=f"b {i}") for i in range(20)]
    specs = [
        HeadSpec("sst", labels=["0", "1"]),
        HeadSpec("sts", kind="regression", input="bi", features="cosine", loss="mse", target_range=[0, 5]),
    ]
    model = tiny_model(tokenizer, *specs)
    tasks = [HeadTask(specs[0], model, sst, batch_size=8), HeadTask(specs[1], model, sts, batch_size=8)]
    mixed = MultitaskTask(tasks, weights={"sts": 0.0}, sampling="round_robin", seed=1)
    batches = mixed.epoch_batches(0)
    assert len(batches) == 5 + 3 and [b.task for b in batches[:4]] == ["sst", "sts", "sst", "sts"]
    sts_batch = next(b for b in batches if b.task == "sts")
    assert sts_batch.batch.second is not None and mixed.loss(model, sts_batch).item() == 0.0  # weight 0
    assert overall_score({"a": {"accuracy": 0.5}, "b": {"pearson": 0.8}}) == pytest.approx((0.5 + 0.9) / 2)


def test_regression_targets_are_checked_with_file_and_line():
    spec = HeadSpec("sts", kind="regression", input="bi", features="cosine", loss="mse", target_range=[0, 5])
    assert targets_of(spec, [Example("a", "2.5", "f.csv", 3, "b")]).tolist() == [0.5]
    with pytest.raises(MinbertError, match="f.csv:3: label 'high' is not a number"):
        targets_of(spec, [Example("a", "high", "f.csv", 3, "b")])
    with pytest.raises(MinbertError, match=r"f.csv:4: score 7 is outside .*set tasks\.sts\.head\.target_range"):
        targets_of(spec, [Example("a", "7", "f.csv", 4, "b")])


def test_pair_task_on_a_single_sentence_file_is_an_error(tokenizer):
    spec = HeadSpec("quora", input="cross", loss="bce", labels=["0", "1"])
    with pytest.raises(MinbertError, match="f.txt:1: task 'quora' reads sentence pairs"):
        HeadTask(spec, tiny_model(tokenizer, spec), [Example("one text", "1", "f.txt", 1)])


def test_split_is_stratified_disjoint_and_seeded(data_dir):
    examples = read_examples(data_dir / "uci_sentiment", "uci")
    assert len(examples) == 3000  # the directory reads all three files
    train_part, dev_part, test_part = split_examples(examples, [0.8, 0.1, 0.1], seed=4)
    assert (len(train_part), len(dev_part), len(test_part)) == (2400, 300, 300)
    assert Counter(e.label for e in test_part) == {"0": 150, "1": 150}
    keys = [(e.source, e.line) for part in (train_part, dev_part, test_part) for e in part]
    assert len(set(keys)) == 3000
    assert [e.line for e in split_examples(examples, [0.8, 0.1, 0.1], seed=4)[2]] == [e.line for e in test_part]


def test_task_overrides_by_name(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"task": "multitask", "tasks": [{"name": "sts"}, {"name": "sst"}]}))
    loaded = load_config(config, ["--tasks.sts.head.loss", "cosent", "--tasks.sst.weight", "2"])
    assert loaded.tasks[0].head.loss == "cosent" and loaded.tasks[1].weight == 2.0
    with pytest.raises(MinbertError, match="no task named 'qqp'"):
        load_config(config, ["--tasks.qqp.weight", "1"])
    with pytest.raises(MinbertError, match="did you mean --tasks.sts.head.loss"):
        load_config(config, ["--tasks.sts.head.los", "mse"])
    with pytest.raises(MinbertError, match="summing to 1"):
        load_config(config, ["--tasks.sts.data.split", "[0.8, 0.3]"])
    with pytest.raises(MinbertError, match=r"tasks\.sst\.head\.kind: input should be 'classification' or 'regression'"):
        load_config(config, ["--tasks.sst.head.kind", "regresion"])


def test_regression_range_defaults_to_the_formats_scale(tmp_path):
    config = tmp_path / "run.yaml"
    regression = {"kind": "regression", "input": "bi", "features": "cosine", "loss": "cosent"}
    config.write_text(
        yaml.safe_dump(
            {
                "task": "multitask",
                "tasks": [
                    {"name": "sts", "data": {"format": "sts"}, "head": regression},
                    {"name": "stsb", "data": {"format": "stsb"}, "head": regression},
                    {"name": "intensity", "data": {"format": "uci"}, "head": {"kind": "regression", "loss": "bce"}},
                ],
            }
        )
    )
    assert [task.head.target_range for task in load_config(config).tasks] == [[0, 5], [0, 5], [0, 1]]
    assert load_config(config, ["--tasks.sts.head.target_range", "[1, 4]"]).tasks[0].head.target_range == [1, 4]


def write_slices(tmp_path, data_dir) -> dict[str, str]:
    """Tiny real slices of the CS224N files (the headers and first rows)."""
    paths = {}
    for name, rows in (
        ("ids-sst-train.csv", 97),
        ("ids-sst-dev.csv", 41),
        ("sts-train.csv", 97),
        ("sts-dev.csv", 41),
        ("quora-dev.csv", 121),
    ):
        lines = (data_dir / "cs224n_multitask" / name).read_text(encoding="utf-8").splitlines(keepends=True)[:rows]
        paths[name] = str(tmp_path / name)
        (tmp_path / name).write_text("".join(lines), encoding="utf-8")
    return paths


@pytest.fixture(scope="module")
def multitask_run(tmp_path_factory, data_dir):
    tmp_path = tmp_path_factory.mktemp("multitask")
    paths = write_slices(tmp_path, data_dir)
    config = {
        "task": "multitask",
        "output_dir": str(tmp_path / "run"),
        "model": {"pooling": "mean", "max_length": 64},
        "tasks": [
            {
                "name": "sst",
                "data": {"train": paths["ids-sst-train.csv"], "dev": paths["ids-sst-dev.csv"], "format": "cs224n"},
                "head": {"hidden_size": 64},
            },
            {
                "name": "quora",
                "data": {"train": paths["quora-dev.csv"], "format": "quora", "split": [0.75, 0.25], "sample_seed": 2},
                "head": {"input": "cross", "loss": "bce"},
            },
            {
                "name": "sts",
                "data": {"train": paths["sts-train.csv"], "dev": paths["sts-dev.csv"], "format": "sts"},
                "head": {
                    "kind": "regression",
                    "input": "bi",
                    "features": "cosine",
                    "loss": "cosent",
                    "target_range": [0, 5],
                },
            },
            {
                "name": "gone",
                "data": {"train": str(tmp_path / "quora-train.csv"), "format": "quora"},
                "head": {"input": "cross"},
            },
        ],
        "multitask": {"sampling": "proportional", "projection_size": 48},
        "train": {"epochs": 1, "batch_size": 16, "lr": 5e-5, "head_lr": 1e-3, "progress": False, "seed": 3},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    return train(load_config(tmp_path / "run.yaml")), tmp_path


def test_multitask_run_trains_reports_and_skips_the_missing_task(multitask_run):
    run, _ = multitask_run
    dev = run.results["dev"]
    assert {"sst_accuracy", "quora_accuracy", "sts_pearson", "sts_spearman", "overall"} <= set(dev)
    assert "gone_accuracy" not in dev and "quora-train.csv not found" in run.summary["skipped_tasks"]
    expected = (dev["sst_accuracy"] + dev["quora_accuracy"] + (dev["sts_pearson"] + 1) / 2) / 3
    assert dev["overall"] == pytest.approx(expected)
    assert dev["sts_pearson"] > 0.6  # the pretrained sentence encoder already ranks similarity well
    report = (run.output_dir / "report.md").read_text()
    assert "| sts | regression, bi, cosine, cosent | dev |" in report and "skipped_tasks" in report
    events = [json.loads(line)["event"] for line in (run.output_dir / "metrics.jsonl").read_text().splitlines()]
    assert "dev" in events and "train" in events and (run.output_dir / "learning_curves.png").is_file()


def test_multitask_model_reloads_and_predicts_the_same(multitask_run):
    run, tmp_path = multitask_run
    reloaded = load(run.output_dir)
    assert isinstance(reloaded, Model) and reloaded.tasks == ["sst", "quora", "sts"]
    texts = ["a gorgeous , witty film", "dull and lifeless"]
    assert [p.probabilities for p in reloaded.predict(texts, task="sst")] == [
        p.probabilities for p in run.model.eval().predict(texts, task="sst")
    ]
    assert reloaded.predict(PAIRS, task="sts") == pytest.approx(run.model.predict(PAIRS, task="sts"), abs=1e-6)
    assert reloaded.predict(PAIRS, task="quora")[0].label in {"0.0", "1.0"}
    with pytest.raises(MinbertError, match="several tasks"):
        reloaded.predict(texts)
    with pytest.raises(MinbertError, match="takes sentence pairs"):
        reloaded.predict(texts, task="sts")


def test_multitask_cli_predict_and_eval(multitask_run, capsys, monkeypatch):
    run, tmp_path = multitask_run
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("A man plays a guitar.\tA man is playing guitar.\n"))
    assert main(["predict", str(run.output_dir), "--task", "sts"]) == 0
    line = json.loads(capsys.readouterr().out.strip())
    assert line["text_pair"] == "A man is playing guitar." and 0 <= line["score"] <= 5
    out = tmp_path / "sts.json"
    assert (
        main(
            [
                "eval",
                str(run.output_dir),
                "--task",
                "sts",
                "--data",
                str(tmp_path / "sts-dev.csv"),
                "--format",
                "sts",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert json.loads(out.read_text())["pearson"] == pytest.approx(run.results["dev"]["sts_pearson"], abs=1e-6)
    monkeypatch.setattr("sys.stdin", io.StringIO("just one sentence\n"))
    assert main(["predict", str(run.output_dir), "--task", "quora"]) == 2
    assert "sentence one<TAB>sentence two" in capsys.readouterr().err


def test_freeze_heads_keeps_heads_and_all_trains_nothing(tmp_path, data_dir):
    paths = write_slices(tmp_path, data_dir)
    base = {
        "task": "multitask",
        "model": {"max_length": 32},
        "tasks": [
            {
                "name": "sst",
                "data": {"train": paths["ids-sst-train.csv"], "dev": paths["ids-sst-dev.csv"], "format": "cs224n"},
            }
        ],
        "multitask": {"projection_size": 16, "normalize": True},
        "train": {"epochs": 1, "batch_size": 32, "progress": False, "eval_before": False},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(base))
    heads = train(
        load_config(tmp_path / "run.yaml", ["--train.freeze", "heads", "--output_dir", str(tmp_path / "heads")])
    )
    frozen_all = train(
        load_config(tmp_path / "run.yaml", ["--train.freeze", "all", "--output_dir", str(tmp_path / "all")])
    )
    assert (
        heads.summary["steps"] == 3
        and frozen_all.summary["steps"] == 0
        and frozen_all.summary["trainable_parameters"] == 0
    )
    assert "sst_accuracy" in frozen_all.results["dev"] and (tmp_path / "all" / "model" / "heads.safetensors").is_file()
    # both runs start from the same seeded initialisation: the frozen heads must still equal it, the projection must not
    trained, untouched = heads.model.state_dict(), frozen_all.model.state_dict()
    head_keys = [k for k in trained if k.startswith("heads.")]
    assert head_keys and all(torch.equal(trained[k], untouched[k]) for k in head_keys)
    assert not torch.equal(trained["projection.weight"], untouched["projection.weight"])
