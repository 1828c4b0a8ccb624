"""spaCy's English stop words, without importing spaCy.

`import spacy` (even `spacy.lang.en.stop_words`) loads thinc, and thinc imports torch whenever it is installed:
2 s and ~190 MB of RSS in a process that serves with the ONNX backend and never needs either. The list is one
plain module inside spaCy's package, so it is read from there: the same words, from the same installed release.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path


@cache
def spacy_english_stop_words() -> frozenset[str]:
    spec = importlib.util.find_spec("spacy")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("spaCy is not installed: its English stop words are the BM25 tokenizer's")
    path = Path(next(iter(spec.submodule_search_locations))) / "lang" / "en" / "stop_words.py"
    namespace: dict = {}
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)  # a set literal and a loop
    return frozenset(namespace["STOP_WORDS"])
