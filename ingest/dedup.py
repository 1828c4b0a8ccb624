"""Near-duplicate documents by MinHash over word shingles, looked up through datasketch's LSH."""

from __future__ import annotations

import functools
import re

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from datasketch import MinHash

# datasketch is imported on first use: its package import pulls scipy.integrate (~60 MB, ~1 s) into every process,
# including API processes that never ingest.

_WORD = re.compile(r"\w+", re.UNICODE)
SHINGLE = 3
# Stored signatures carry no trace of their scheme, so it is fixed here and part of what we persist.
SCHEME = "affine32"


@functools.cache
def _permutations(num_perm: int):
    """The seeded permutation parameters of every MinHash of `num_perm`: made once, not per document (measured on
    1,000 SciFact abstracts, minhash() took 0.28 s making them each time, 0.20 s sharing them)."""
    from datasketch.minhash import MinHash

    return MinHash(num_perm=num_perm, scheme=SCHEME).permutations


def minhash(text: str, num_perm: int) -> MinHash:
    from datasketch.minhash import MinHash

    words = _WORD.findall(text.lower())
    shingles = {" ".join(words[i : i + SHINGLE]) for i in range(max(1, len(words) - SHINGLE + 1))}
    m = MinHash(num_perm=num_perm, scheme=SCHEME, permutations=_permutations(num_perm))
    m.update_batch([s.encode("utf-8") for s in shingles])
    return m


def to_bytes(m: MinHash) -> bytes:
    return np.asarray(m.hashvalues, dtype=np.uint32).tobytes()


def from_bytes(blob: bytes, num_perm: int) -> MinHash:
    from datasketch.minhash import MinHash

    values = np.frombuffer(blob, dtype=np.uint32)
    if len(values) != num_perm:
        raise ValueError(f"stored MinHash has {len(values)} permutations, settings say {num_perm}")
    return MinHash(num_perm=num_perm, hashvalues=values, scheme=SCHEME, permutations=_permutations(num_perm))


class NearDuplicateIndex:
    def __init__(self, threshold: float, num_perm: int) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"near-duplicate threshold={threshold} is out of range (0, 1]")
        self.threshold = threshold
        self.num_perm = num_perm
        from datasketch.lsh import MinHashLSH

        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._sigs: dict[str, MinHash] = {}

    def add(self, doc_id: str, m: MinHash) -> None:
        if doc_id in self._sigs:
            self.remove(doc_id)
        self._lsh.insert(doc_id, m)
        self._sigs[doc_id] = m

    def remove(self, doc_id: str) -> None:
        if self._sigs.pop(doc_id, None) is not None:
            self._lsh.remove(doc_id)

    def find(self, m: MinHash, exclude: str | None = None) -> str | None:
        """The most similar indexed document at or above the threshold, if any."""
        best, best_sim = None, -1.0
        for cand in self._lsh.query(m):
            if cand == exclude:
                continue
            # LSH candidates are probable; the estimated Jaccard decides.
            sim = m.jaccard(self._sigs[cand])
            if sim >= self.threshold and (sim, cand) > (best_sim, best or ""):
                best, best_sim = cand, sim
        return best
