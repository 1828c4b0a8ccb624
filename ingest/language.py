"""A document's language, for its BM25 analysis: given in its metadata (`language`), else detected.

langdetect (Google's language-detection profiles, a dependency of unstructured already installed) is seeded, so a
text always gets the same answer. Text in CJK scripts is told apart by script first (kana: Japanese, Hangul: Korean,
Han alone: Chinese), which is exact where langdetect's n-gram profiles are not on short text. English is the
fallback whenever detection is unsure, so an English corpus is analysed exactly as before languages existed.
"""

from __future__ import annotations

import re
import threading
from functools import cache

from encoders.lexical import DEFAULT_LANGUAGE, LANGUAGES, check_language

SAMPLE_CHARS = 4000  # detection reads the start of a document: enough for its n-gram profile, cheap on long ones
MIN_PROBABILITY = 0.9  # below this, English (the tokenizer's analysis before languages existed)
MIN_LETTERS = 20  # a text this short (a table of numbers, a title) is not judged: English
_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
_HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)
_LOCK = threading.Lock()  # langdetect's factory is module state, loaded once


@cache
def _factory():
    from langdetect import DetectorFactory
    from langdetect.detector_factory import init_factory

    DetectorFactory.seed = 0  # its sampling is random otherwise: the same text could get two languages
    init_factory()
    from langdetect import detector_factory

    return detector_factory._factory


def detect_language(text: str) -> str:
    """The ISO 639-1 code BM25 analyses `text` in (one of encoders.lexical.LANGUAGES)."""
    sample = text[:SAMPLE_CHARS]
    letters = len(_LETTER.findall(sample))
    if letters < MIN_LETTERS:
        return DEFAULT_LANGUAGE
    kana, hangul, han = (len(p.findall(sample)) for p in (_KANA, _HANGUL, _HAN))
    if (kana + hangul + han) * 3 >= letters:  # a third of the letters in CJK scripts
        return "ja" if kana else "ko" if hangul > han else "zh"
    from langdetect.lang_detect_exception import LangDetectException

    with _LOCK:
        factory = _factory()
        try:
            detector = factory.create()
            detector.append(sample)
            best = max(detector.get_probabilities(), key=lambda p: p.prob, default=None)
        except LangDetectException:
            return DEFAULT_LANGUAGE
    if best is None or best.prob < MIN_PROBABILITY:
        return DEFAULT_LANGUAGE
    code = best.lang.split("-")[0]
    return code if code in LANGUAGES else DEFAULT_LANGUAGE


def document_language(text: str, metadata: dict) -> str:
    """The metadata's `language` (checked: ValueError names the allowed codes) if given, else detected."""
    given = metadata.get("language")
    if given is not None and given != "":
        return check_language(given)
    return detect_language(text)
