"""The paths a new user took and found broken (#39), as they are documented: a multi-label CSV whose rows join
intents with '#', a test set with intents training never saw (ATIS), and eval on a file with a bad row, all
through the command line with the run's own data mapping reused."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from minbert.cli import main
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def write_csv(path: Path, rows: list[tuple[str, str]]) -> str:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "intent"])
        writer.writerows(rows)
    return str(path)


@pytest.fixture(scope="module")
def atis_like(tmp_path_factory, data_dir) -> dict[str, str]:
    """HWU64 rows of 12 intents; a fifth of the rows join two intents with '#' (as ATIS writes
    atis_airfare#atis_flight_time); test also holds rows of two intents training never saw."""
    folder = tmp_path_factory.mktemp("atis_like")
    with open(data_dir / "hwu64" / "train.csv", encoding="utf-8") as f:
        rows = [(r["text"], r["intent"]) for r in csv.DictReader(f)]
    intents = sorted({i for _, i in rows})
    known, unseen = intents[:12], intents[12:14]
    pick = random.Random(0)
    chosen = [r for r in rows if r[1] in known]
    pick.shuffle(chosen)
    joined = [(f"{a[0]} and {b[0]}", f"{a[1]}#{b[1]}") for a, b in zip(chosen[:40:2], chosen[1:40:2], strict=True)]
    train, dev, test = chosen[40:440] + joined[:14], chosen[440:520] + joined[14:17], chosen[520:600] + joined[17:]
    test += [r for r in rows if r[1] in unseen][:10]
    return {
        "train": write_csv(folder / "train.csv", train),
        "dev": write_csv(folder / "dev.csv", dev),
        "test": write_csv(folder / "test.csv", test),
        "folder": str(folder),
    }


def train_args(data: dict[str, str], out: Path, *extra: str) -> list[str]:
    return [
        *("-q", "train", str(REPO / "configs" / "massive_intent.yaml")),
        *("--data.train", data["train"], "--data.dev", data["dev"], "--data.test", data["test"]),
        *("--data.format", "csv", "--data.text_column", "text", "--data.label_column", "intent"),
        *("--data.label_separator", "#", "--train.epochs", "1", "--model.max_length", "32"),
        *("--train.progress", "false", "--output_dir", str(out), *extra),
    ]


def test_a_multilabel_csv_with_hash_separators_and_unseen_test_intents(atis_like, tmp_path, capsys):
    assert main(train_args(atis_like, tmp_path / "refused")) == 2  # unseen test intents stop the run by default
    err = capsys.readouterr().err
    assert "does not occur in the training data" in err and "data.unseen_labels" in err

    out = tmp_path / "run"
    assert main(train_args(atis_like, out, "--data.unseen_labels", "count_wrong")) == 0
    results = json.loads((out / "results.json").read_text())["results"]
    assert results["test"]["unseen_label_rows"] == 10 and "micro_f1" in results["test"]  # a multi-label run
    assert results["dev"]["micro_f1"] >= 0  # dev has no unseen rows: no count
    description = json.loads((out / "model" / "minbert.json").read_text())
    assert description["heads"][0]["multilabel"] and len(description["heads"][0]["labels"]) == 12
    log = (out / "train.log").read_text()
    assert "10 test rows have labels training never saw" in log and "scored as misses" in log

    # eval reuses the run's format and columns; a bad row is skipped and counted with the same switch as training
    broken = Path(atis_like["folder"]) / "test_with_empty_row.csv"
    lines = Path(atis_like["test"]).read_text().splitlines()
    broken.write_text("\n".join([*lines[:5], ",atis_flight", *lines[5:]]) + "\n")
    assert main(["eval", str(out), "--data", str(broken)]) == 2
    assert "test_with_empty_row.csv:6: empty text" in capsys.readouterr().err
    assert main(["eval", str(out), "--data", str(broken), "--data.skip_bad_rows", "true"]) == 0
    captured = capsys.readouterr()
    scored = json.loads(captured.out)
    assert scored["examples"] == len(lines) - 1 and scored["unseen_label_rows"] == 10  # every good row, unseen too
    assert "test_with_empty_row.csv: skipped 1 bad rows (data.skip_bad_rows); first: line 6: empty text" in captured.err

    # predict --data labels every row of the file the same way, each answer with its file line
    assert main(["predict", str(out), "--data", str(broken)]) == 2
    assert "test_with_empty_row.csv:6: empty text" in capsys.readouterr().err
    assert main(["predict", str(out), "--data", str(broken), "--data.skip_bad_rows", "true", "--top-k", "2"]) == 0
    captured = capsys.readouterr()
    answers = [json.loads(line) for line in captured.out.splitlines()]
    assert [a["line"] for a in answers] == [n for n in range(2, len(lines) + 2) if n != 6]
    assert answers[0]["text"] == next(csv.reader([lines[1]]))[0] and "labels" in answers[0]  # multi-label sets
    assert "skipped 1 bad rows" in captured.err
    assert main(["predict", str(out), "some text", "--data", str(broken)]) == 2
