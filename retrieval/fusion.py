"""Score fusion over a candidate list: each leg's scores made comparable, then a weighted sum.

Z-scores over the candidates put a leg whose scores spread widely (BM25) and one packed in a narrow band
(cosine) on one scale with no constant to tune per corpus.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np


def zscores(values: Sequence[float]) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return x
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros(len(x))


def weighted_zscore(legs: Mapping[str, Sequence[float]], weights: Mapping[str, float]) -> np.ndarray:
    """Sum over legs of weight * z-score of that leg over the candidates."""
    unknown = set(weights) - set(legs)
    if unknown:
        raise ValueError(f"weights name legs {sorted(unknown)} that are not among {sorted(legs)}")
    sizes = {len(v) for v in legs.values()}
    if len(sizes) > 1:
        raise ValueError(f"every leg must score the same candidates, got lengths {sorted(sizes)}")
    total = np.zeros(sizes.pop() if sizes else 0)
    for leg, w in weights.items():
        if w:
            total += w * zscores(legs[leg])
    return total
