"""Keep evaluation sentences out of training data (decontamination).

Extra training data (an intermediate task such as GLUE SST-2 before SST-5 or UCI) may contain sentences
that are also in the evaluation sets. Texts are compared on lower-cased letters and digits only, so
PTB-tokenised "it 's" and plain "it's" are the same sentence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from minbert.data.readers import Example


def squeeze(text: str) -> str:
    """The comparison key of a text: lower-cased letters and digits, nothing else."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


def drop_overlap(examples: list[Example], texts: Iterable[str]) -> tuple[list[Example], list[Example]]:
    """(kept, dropped): an example is dropped when its text, or the second text of its pair, is among `texts`."""
    keys = {squeeze(t) for t in texts}
    kept: list[Example] = []
    dropped: list[Example] = []
    for e in examples:
        hit = squeeze(e.text) in keys or (e.text_pair is not None and squeeze(e.text_pair) in keys)
        (dropped if hit else kept).append(e)
    return kept, dropped
