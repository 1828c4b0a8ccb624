"""spaCy's stop words per language, without importing spaCy.

`import spacy` (even `spacy.lang.en.stop_words`) loads thinc, and thinc imports torch whenever it is installed:
2 s and ~190 MB of RSS in a process that serves with the ONNX backend and never needs either. Each list is one
plain module inside spaCy's package (`spacy/lang/<iso>/stop_words.py`), so it is read from there: the same words,
from the same installed release.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path


def _spacy_dir() -> Path:
    spec = importlib.util.find_spec("spacy")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("spaCy is not installed: its stop words are the BM25 tokenizer's")
    return Path(next(iter(spec.submodule_search_locations)))


@cache
def spacy_stop_words(language: str) -> frozenset[str]:
    """The stop words spaCy lists for an ISO 639-1 language code (an empty set where it has none)."""
    path = _spacy_dir() / "lang" / language / "stop_words.py"
    if not path.exists():
        return frozenset()
    namespace: dict = {}
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)  # a set literal and a loop
    return frozenset(w.lower() for w in namespace["STOP_WORDS"])
