"""A document's language, for its BM25 analysis: given in its metadata (`language`), else detected.

py3langid (langid.py's model, shipped inside the package: nothing is downloaded) classifies among the languages
BM25 has an analysis for; it is deterministic and takes about 1.5 ms for a 4,000-character sample (langdetect, which
unstructured brings, took 10 ms and answers by random sampling). Text in CJK scripts is told apart by script first
(kana: Japanese, Hangul: Korean, Han alone: Chinese). English is the fallback whenever detection is unsure, so an
English corpus is analysed exactly as before languages existed (all 5,183 SciFact abstracts come out English).
"""

from __future__ import annotations

import re
import threading
from functools import cache

from encoders.lexical import CJK_LANGUAGES, DEFAULT_LANGUAGE, LANGUAGES, check_language

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
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    # Only languages BM25 can analyse compete: probability is not spread over ones it would treat as English.
    ident.set_languages([code for code in LANGUAGES if code not in CJK_LANGUAGES and code in ident.nb_classes])
    return ident


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
