"""A document's language, for its BM25 analysis: given in its metadata (`language`), else detected.

py3langid (langid.py's model, shipped inside the package: nothing is downloaded) classifies among the languages
BM25 has an analysis for; it is deterministic and takes about 1.5 ms for a 4,000-character sample (langdetect, which
unstructured brings, took 10 ms and answers by random sampling). Text in CJK scripts is told apart by script first
(kana: Japanese, Hangul: Korean, Han alone: Chinese). English is the fallback whenever detection is unsure, so an
English corpus is analysed exactly as before languages existed (all 5,183 SciFact abstracts come out English).
"""

from __future__ import annotations

import copy
import re
import threading
from functools import cache, lru_cache
from typing import Sequence

from encoders.lexical import CJK_LANGUAGES, DEFAULT_LANGUAGE, LANGUAGES, check_language, has_cjk

SAMPLE_CHARS = 4000  # detection reads the start of a document: enough for its n-gram profile, cheap on long ones
MIN_PROBABILITY = 0.9  # below this, English (the tokenizer's analysis before languages existed)
MIN_LETTERS = 20  # a text this short (a table of numbers, a title) is not judged: English
MIN_CJK = 4
_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
_HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)
_LOCK = threading.Lock()  # the identifier keeps per-call state in numpy arrays: one call at a time


@cache
def _model():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)  # ~1.2 s: loaded once


@cache
def _known() -> frozenset[str]:
    return frozenset(_model().nb_classes)


@lru_cache(maxsize=64)
def _identifier(languages: tuple[str, ...] | None = None):
    """py3langid choosing among `languages` (None: every language BM25 analyses, CJK aside): a copy of the model
    restricted to them (the full model stays inside each copy, shared)."""
    ident = copy.copy(_model())
    # Only languages BM25 can analyse compete: probability is not spread over ones it would treat as English.
    ident.set_languages(list(languages) if languages else [code for code in LANGUAGES if code not in CJK_LANGUAGES
                                                            and code in _known()])
    return ident


def query_language_weights(text: str, languages: Sequence[str]) -> dict[str, float]:
    """How BM25 weighs the analysis of a query in each language of the snapshot it searches: the probability that
    the query is in that language, among the snapshot's languages (py3langid); every weight 1 where that cannot be
    told (one analysis in the snapshot, CJK characters in the query, a language the identifier lacks).

    Why weigh: each document meets only its own language's stems, so under equal weights a German query's English
    analysis scored the few English pages of a German corpus as if the query were English, with the high IDF of
    terms only they hold (manpages-de, test: nDCG@10 0.611; weighted 0.683, English analysis alone of those pages
    is what is lost). Why not pick one language: a wrong pick would lose a match; a weight keeps it, lower.
    ja/ko/zh analyse words outside CJK scripts as English, so they take English's weight."""
    langs = tuple(dict.fromkeys(languages)) or (DEFAULT_LANGUAGE,)
    analysed = {code: DEFAULT_LANGUAGE if code in CJK_LANGUAGES else code for code in langs}
    candidates = tuple(sorted(set(analysed.values())))
    if len(candidates) < 2 or has_cjk(text) or not _LETTER.search(text) or not set(candidates) <= _known():
        return dict.fromkeys(langs, 1.0)
    ident = _identifier(candidates)
    with _LOCK:
        probability = dict(ident.rank(text[:SAMPLE_CHARS]))
    return {code: float(probability[analysed[code]]) for code in langs}


def detect_language(text: str) -> str:
    """The ISO 639-1 code BM25 analyses `text` in (one of encoders.lexical.LANGUAGES)."""
    sample = text[:SAMPLE_CHARS]
    letters = len(_LETTER.findall(sample))
    kana, hangul, han = (len(p.findall(sample)) for p in (_KANA, _HANGUL, _HAN))
    # A third of the letters in CJK scripts (a CJK character is about a word: a few of them are enough to judge).
    if kana + hangul + han >= MIN_CJK and (kana + hangul + han) * 3 >= letters:
        return "ja" if kana else "ko" if hangul > han else "zh"
    if letters < MIN_LETTERS:
        return DEFAULT_LANGUAGE
    with _LOCK:
        code, probability = _identifier().classify(sample)
    if probability < MIN_PROBABILITY or code not in LANGUAGES:
        return DEFAULT_LANGUAGE
    return code


def document_language(text: str, metadata: dict) -> str:
    """The metadata's `language` (checked: ValueError names the allowed codes) if given, else detected."""
    given = metadata.get("language")
    if given is not None and given != "":
        return check_language(given)
    return detect_language(text)
