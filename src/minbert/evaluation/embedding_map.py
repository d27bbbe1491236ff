"""Embedding maps (seed 000's t-SNE figures) and the numbers that make them comparable.

A picture of clusters is persuasive but not measurable, so every map comes with the silhouette
score (cosine) and the leave-one-out kNN accuracy of the same vectors: "after fine-tuning the classes
separate" becomes "silhouette 0.05 -> 0.41".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402
from sklearn.metrics import silhouette_score  # noqa: E402
from sklearn.neighbors import NearestNeighbors  # noqa: E402

from minbert.errors import MinbertError  # noqa: E402

METHODS = ("tsne", "pca", "umap")
Encode = Callable[[str, list[str]], np.ndarray]


@dataclass
class Panel:
    title: str
    points: np.ndarray  # (n, 2)
    labels: list[str]
    scores: dict[str, float]


def cluster_scores(vectors: np.ndarray, labels: Sequence[str], k: int = 5) -> dict[str, float]:
    """Silhouette (cosine) and leave-one-out k-NN accuracy (cosine; majority vote, ties to the nearest)."""
    y = np.asarray(labels)
    neighbours = NearestNeighbors(n_neighbors=min(k + 1, len(y)), metric="cosine").fit(vectors)
    _, index = neighbours.kneighbors(vectors)
    correct = 0
    for i, row in enumerate(index):
        votes = [y[j] for j in row if j != i][:k]
        counts = {label: votes.count(label) for label in votes}
        best = max(counts.values())
        correct += next(label for label in votes if counts[label] == best) == y[i]
    return {"silhouette": float(silhouette_score(vectors, y, metric="cosine")), "knn_accuracy": correct / len(y)}


def project(vectors: np.ndarray, method: str = "tsne", seed: int = 0) -> np.ndarray:
    """2-D coordinates of the vectors."""
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(vectors)
    if method == "tsne":
        perplexity = min(30.0, max(2.0, (len(vectors) - 1) / 3))
        return TSNE(
            n_components=2, perplexity=perplexity, metric="cosine", init="pca", random_state=seed
        ).fit_transform(vectors)
    if method == "umap":
        try:
            import umap
        except ImportError as e:
            raise MinbertError(
                "--method umap needs the umap-learn package: pip install umap-learn (or use tsne / pca)"
            ) from e
        return umap.UMAP(n_components=2, metric="cosine", random_state=seed).fit_transform(vectors)
    raise MinbertError(f"unknown projection {method!r}; use one of {', '.join(METHODS)}")


def first_classes(labels: Sequence[str], k: int) -> np.ndarray:
    """Indices of the examples whose label is among the first k labels in order of appearance (as seed 000 plots)."""
    keep: list[str] = []
    for label in labels:
        if label not in keep:
            keep.append(label)
        if len(keep) == k:
            break
    return np.array([i for i, label in enumerate(labels) if label in keep])


def plot_panels(panels: Sequence[Panel], path: Path, method: str) -> Path:
    names = sorted({label for panel in panels for label in panel.labels})
    colours = plt.get_cmap("tab20" if len(names) > 10 else "tab10")
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 5.6), squeeze=False)
    for axis, panel in zip(axes[0], panels, strict=True):
        for i, name in enumerate(names):
            mask = np.array([label == name for label in panel.labels])
            axis.scatter(
                panel.points[mask, 0], panel.points[mask, 1], s=9, alpha=0.75, color=colours(i % colours.N), label=name
            )
        scores = panel.scores
        axis.set_title(
            f"{panel.title}\nsilhouette {scores['silhouette']:.3f} · 5-NN accuracy {scores['knn_accuracy']:.3f}",
            fontsize=10,
        )
        axis.set_xticks([])
        axis.set_yticks([])
    axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, markerscale=2, frameon=False)
    fig.suptitle(f"{method.upper()} of sentence embeddings, {len(names)} classes", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def compare_models(
    models: Sequence[str],
    encode: Encode,
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    classes: int = 10,
    max_points: int = 2000,
    method: str = "tsne",
    seed: int = 0,
) -> list[Panel]:
    """One panel per model on the same sentences: the first `classes` classes, at most `max_points`
    sentences (a seeded sample), each model's vectors from `encode(name, texts)`, with its cluster scores."""
    keep = first_classes(labels, classes)
    if len(keep) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(keep, max_points, replace=False))
    kept_texts, kept_labels = [texts[i] for i in keep], [labels[i] for i in keep]
    panels = []
    for name in models:
        vectors = encode(name, kept_texts)
        panels.append(Panel(name, project(vectors, method, seed), kept_labels, cluster_scores(vectors, kept_labels)))
    return panels
