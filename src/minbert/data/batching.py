"""Batches with little padding: length bucketing for training, length sorting for inference.

Bucketing (as in fairseq / HF `group_by_length`): shuffle, cut the data into pools of
`pool_batches` batches, sort each pool by length, cut it into batches, shuffle the batches.
Each epoch still sees every example once in a random order of batches, but a batch holds
sentences of similar length, so dynamic padding to the batch's longest wastes little.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


def bucketed_batches(
    lengths: Sequence[int], batch_size: int, seed: int, *, bucket: bool = True, pool_batches: int = 50
) -> list[list[int]]:
    """Index batches for one epoch; the same seed gives the same batches."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    if not bucket:
        return [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    lengths_arr = np.asarray(lengths)
    pool = batch_size * pool_batches
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort(lengths_arr[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size].tolist() for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def sorted_batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Inference batches of similar length (longest first); callers put results back by index."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    for i in range(0, len(order), batch_size):
        yield order[i : i + batch_size].tolist()
