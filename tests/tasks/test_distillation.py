"""Knowledge distillation: a student learns a saved teacher's outputs, on labelled and unlabelled texts."""

from __future__ import annotations

import json

import pytest
import yaml

from minbert import MinbertError, load_config, train
from minbert.data.readers import read_examples
from minbert.model.heads import HeadSpec
from minbert.model.task_model import load
from minbert.tasks.distillation import Distillation
from tests.helpers import classifier

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def own_home(tmp_path, monkeypatch):
    """Teacher outputs are kept under MINBERT_HOME: each test gets its own, so none reads another's (or the user's)."""
    monkeypatch.setenv("MINBERT_HOME", str(tmp_path / "minbert-home"))


@pytest.fixture(scope="module")
def massive(tmp_path_factory, data_dir):
    """train (300 rows), dev (80), a pool of 300 further train rows, and 20 dev rows mixed into that pool."""
    folder = tmp_path_factory.mktemp("massive")
    rows = (data_dir / "massive_en_us" / "train.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    dev = (data_dir / "massive_en_us" / "validation.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (folder / "train.jsonl").write_text("".join(rows[:300]), encoding="utf-8")
    (folder / "dev.jsonl").write_text("".join(dev[:80]), encoding="utf-8")
    (folder / "pool.jsonl").write_text("".join(rows[300:600] + dev[:20]), encoding="utf-8")
    return folder


def config(massive, out, **sections) -> str:
    raw = {
        "output_dir": str(out),
        "data": {"train": str(massive / "train.jsonl"), "dev": str(massive / "dev.jsonl"), "format": "massive"},
        "model": {"max_length": 32, "hidden_size": 0},
        "train": {"freeze": "encoder", "epochs": 100, "batch_size": 32, "lr": 3e-3, "seed": 5, "progress": False},
        **sections,
    }
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(raw))))
    return str(path)


@pytest.fixture(scope="module")
def teacher(massive, tmp_path_factory):
    """A teacher with a [CLS] probe (the students use the same architecture, so they can match it closely)."""
    out = tmp_path_factory.mktemp("teacher") / "run"
    train(
        load_config(
            config(massive, out, train={"freeze": "encoder", "epochs": 40, "lr": 3e-3, "seed": 1, "progress": False})
        )
    )
    return out


def distance(student_dir, teacher_dir, texts) -> float:
    """Mean total-variation distance between the student's and the teacher's class probabilities (0: identical)."""
    mine, theirs = load(student_dir).predict_proba(texts), load(teacher_dir).predict_proba(texts)
    return float(0.5 * abs(mine - theirs).sum(axis=1).mean())


def dev_texts(massive) -> list[str]:
    return [e.text for e in read_examples(massive / "dev.jsonl", "massive")]


def test_a_distilled_student_matches_its_teacher_better_than_one_trained_on_labels(massive, teacher, tmp_path):
    plain = train(load_config(config(massive, tmp_path / "plain")))
    distilled = train(
        load_config(config(massive, tmp_path / "distilled", distill={"teacher": str(teacher), "alpha": 0.9}))
    )
    texts = dev_texts(massive)
    assert distance(distilled.output_dir, teacher, texts) < 0.5 * distance(plain.output_dir, teacher, texts)
    assert distilled.summary["distilled_from"] == f"{teacher} (alpha 0.9, T 2)"


def test_unlabelled_texts_are_labelled_by_the_teacher_and_dev_texts_among_them_dropped(
    massive, teacher, tmp_path, caplog
):
    few = massive / "few.jsonl"
    few.write_text("".join((massive / "train.jsonl").read_text().splitlines(keepends=True)[:40]))
    sections = {"distill": {"teacher": str(teacher), "alpha": 1.0, "data": [str(massive / "pool.jsonl")]}}
    with caplog.at_level("INFO"):
        widened = train(load_config(config(massive, tmp_path / "widened", **sections), ["--data.train", str(few)]))
    assert "distill.data: dropped 20 texts that are in the dev or test files" in caplog.text
    assert widened.summary["train_examples"] == 40 + 300
    assert widened.summary["distilled_from"].endswith("300 unlabelled texts)")
    labels_only = {"distill": {"teacher": str(teacher), "alpha": 0.0}}  # the same label set, no soft targets
    alone = train(load_config(config(massive, tmp_path / "alone", **labels_only), ["--data.train", str(few)]))
    texts = dev_texts(massive)
    assert distance(widened.output_dir, teacher, texts) < 0.5 * distance(alone.output_dir, teacher, texts)


def test_distillation_fine_tunes_the_encoder_too(massive, teacher, tmp_path):
    """Without the feature cache: the teacher's outputs travel with the token batches."""
    run = train(
        load_config(
            config(massive, tmp_path / "tuned", distill={"teacher": str(teacher)}),
            ["--train.freeze", "none", "--train.epochs", "1", "--train.lr", "5e-5", "--data.max_train_examples", "64"],
        )
    )
    assert run.summary["steps"] == 2 and run.results["dev"]["accuracy"] >= 0


def test_a_teacher_that_does_not_match_the_student_is_refused_before_training(massive, tmp_path):
    other = classifier(["a", "b"], max_length=16).save(tmp_path / "other")
    with pytest.raises(MinbertError, match="head 'main' does not know the labels alarm_query, alarm_remove"):
        train(load_config(config(massive, tmp_path / "student", distill={"teacher": str(other)})))
    assert not (tmp_path / "student" / "model").exists()
    teacher = Distillation.load(other, 0.5, 2.0)
    with pytest.raises(MinbertError, match="has no head 'sst' \\(it has main\\)"):
        teacher.check(HeadSpec("sst", labels=["a", "b"]))
    with pytest.raises(MinbertError, match="is classification on single inputs, the student's is regression"):
        teacher.check(HeadSpec("main", kind="regression", loss="mse", labels=[]))
    with pytest.raises(MinbertError, match="the labels are in another order"):
        teacher.check(HeadSpec("main", labels=["b", "a"]))


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"distill": {"alpha": 0.7}}, "distill.alpha is set but distill.teacher is not"),
        ({"distill": {"teacher": "t", "alpha": 0.0, "data": ["u.jsonl"]}}, "distill.alpha is 0"),
        ({"distill": {"teacher": "t", "alpha": 1.5}}, "less than or equal to 1"),
    ],
)
def test_distill_config_errors_name_the_field(tmp_path, massive, sections, message):
    with pytest.raises(MinbertError, match=message):
        load_config(config(massive, tmp_path / "bad", **sections))


def test_the_teachers_outputs_are_computed_once_for_every_student_of_the_same_data(
    massive, teacher, tmp_path, monkeypatch, caplog
):
    sections = {"distill": {"teacher": str(teacher)}}
    with caplog.at_level("INFO"):
        first = train(load_config(config(massive, tmp_path / "first", **sections), ["--train.epochs", "2"]))
        assert "teacher" in caplog.text and "labelled 300 training rows" in caplog.text
        caplog.clear()
        second = train(
            load_config(config(massive, tmp_path / "second", **sections), ["--train.epochs", "2", "--train.seed", "9"])
        )
    assert "the teacher's outputs for 300 rows read from" in caplog.text and "labelled 300" not in caplog.text
    assert len(list((tmp_path / "minbert-home" / "teacher_outputs").glob("*.safetensors"))) == 1
    assert first.results["dev"]["accuracy"] > 0 and second.results["dev"]["accuracy"] > 0


def test_a_multitask_student_distils_each_head_from_the_teachers_head_of_the_same_name(tmp_path, data_dir, caplog):
    from tests.test_run import multitask_config

    path = multitask_config(tmp_path, data_dir, freeze="encoder")
    teacher = train(load_config(path, ["--output_dir", str(tmp_path / "teacher")]))
    with caplog.at_level("INFO"):
        student = train(
            load_config(
                path,
                [
                    "--output_dir",
                    str(tmp_path / "student"),
                    "--distill.teacher",
                    str(teacher.output_dir),
                    "--train.seed",
                    "4",
                ],
            )
        )
    assert "training rows of head sst" in caplog.text and "training rows of head sts" in caplog.text
    assert {"sst_accuracy", "sts_pearson"} <= set(student.results["dev"])
