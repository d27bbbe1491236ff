"""Embedding maps: the comparison numbers by hand, and the command end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from minbert.cli import main
from minbert.evaluation.embedding_map import cluster_scores, first_classes


def test_knn_accuracy_by_hand():
    # Two tight clusters on the unit circle and one point of class b sitting inside cluster a.
    angles = [0.0, 0.05, 0.1, 0.15, 3.0, 3.05, 3.1, 0.07]
    vectors = np.array([[np.cos(a), np.sin(a)] for a in angles])
    labels = ["a", "a", "a", "a", "b", "b", "b", "b"]
    scores = cluster_scores(vectors, labels, k=3)
    # every point is right except the intruder (its 3 neighbours are a's): 7 / 8
    assert scores["knn_accuracy"] == pytest.approx(7 / 8)
    assert -1 <= scores["silhouette"] <= 1
    separated = cluster_scores(vectors[:7], labels[:7], k=3)
    assert separated["knn_accuracy"] == 1.0 and separated["silhouette"] > scores["silhouette"]


def test_first_classes_in_order_of_appearance():
    assert first_classes(["x", "y", "x", "z", "y", "w"], 2).tolist() == [0, 1, 2, 4]


@pytest.mark.slow
def test_plot_embeddings_command(tmp_path, data_dir, capsys):
    out = tmp_path / "map.png"
    assert (
        main(
            [
                "-q",
                "plot-embeddings",
                "all-MiniLM-L6-v2",
                "--data",
                str(data_dir / "massive_en_us" / "validation.jsonl"),
                "--format",
                "massive",
                "--classes",
                "4",
                "--method",
                "pca",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert out.is_file() and out.stat().st_size > 10_000
    scores = json.loads(out.with_suffix(".json").read_text())["all-MiniLM-L6-v2"]
    assert 0.5 < scores["knn_accuracy"] <= 1.0
    assert "silhouette" in capsys.readouterr().out


def test_plot_embeddings_names_a_missing_model_before_encoding_any(tmp_path, capsys):
    missing = tmp_path / "no_such_run"
    out = tmp_path / "map.png"
    assert (
        main(
            [
                "plot-embeddings",
                "all-MiniLM-L6-v2",
                str(missing),
                "--data",
                str(tmp_path / "absent.jsonl"),
                "--out",
                str(out),
            ]
        )
        == 2
    )
    captured = capsys.readouterr()
    assert f"{missing}: checkpoint directory does not exist" in captured.err
    assert "silhouette" not in captured.out and not out.exists()
