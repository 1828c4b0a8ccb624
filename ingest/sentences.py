"""nltk's punkt sentence tokenizers, with their fixed patterns compiled by Python's `re`.

Since 3.10, nltk runs every pattern it applies through its `redos` module: the third-party `regex` engine under a
wall-clock timeout, a guard meant for patterns a caller supplies. Punkt applies only nltk's own fixed patterns,
and through the guard it was the largest CPU cost of chunking (measured on the 5,183 SciFact abstracts: 1.24 s
with the guard, 0.41 s with the same patterns on `re`, the same sentence spans for every abstract). These classes
change nothing but the engine: each pattern is the library's own, recompiled with its flags, so a change of
nltk's patterns comes through. tests/ingest/test_sentences.py checks the spans against the stock tokenizers.

The patterns are linear in their input (no nested quantifiers over one sub-expression), and documents are bounded
in length before they are split (SNAPDEX_MAX_DOCUMENT_CHARS).

Two tokenizers: `english()`, punkt trained on English (sentence windows), and `untrained()`, llama-index's
SentenceSplitter's own (`PunktSentenceTokenizer()` with no parameters), so chunks come out as they always did.
"""

from __future__ import annotations

import re
from functools import cache

# The flags `re` knows; the `regex` engine adds its own (VERSION0, ...) that `re` rejects.
_RE_FLAGS = re.IGNORECASE | re.MULTILINE | re.DOTALL | re.UNICODE | re.VERBOSE | re.ASCII


def _on_re(pattern) -> re.Pattern:
    """The same pattern compiled by `re` (a stock `re.Pattern`, or nltk's TimedPattern, which exposes both)."""
    return re.compile(pattern.pattern, pattern.flags & _RE_FLAGS)


@cache
def _classes():
    from nltk.tokenize import punkt

    class LanguageVars(punkt.PunktLanguageVars):
        re_boundary_realignment = _on_re(punkt.PunktLanguageVars.re_boundary_realignment)

        def _once(self, name: str, stock) -> re.Pattern:
            """The stock pattern `stock()` compiles, on `re`, made once per instance (as nltk memoizes its own)."""
            if name not in self.__dict__:
                self.__dict__[name] = _on_re(stock())
            return self.__dict__[name]

        def _word_tokenizer_re(self):
            return self._once("_word_tokenizer_on_re", super()._word_tokenizer_re)

        def period_context_re(self):
            return self._once("_period_context_on_re", super().period_context_re)

    non_punct = _on_re(punkt._re_non_punct)

    class Token(punkt.PunktToken):
        _RE_ELLIPSIS = _on_re(punkt.PunktToken._RE_ELLIPSIS)
        _RE_NUMERIC = _on_re(punkt.PunktToken._RE_NUMERIC)
        _RE_INITIAL = _on_re(punkt.PunktToken._RE_INITIAL)
        _RE_ALPHA = _on_re(punkt.PunktToken._RE_ALPHA)

        @property
        def is_non_punct(self):
            return non_punct.search(self.type)

    class Trained(punkt.PunktTokenizer):
        def __init__(self, lang: str = "english") -> None:
            punkt.PunktSentenceTokenizer.__init__(self, lang_vars=LanguageVars(), token_cls=Token)
            self._save_dir = None
            self.load_lang(lang)

    return LanguageVars, Token, Trained


@cache
def english():
    """Punkt trained on English: nltk's `PunktTokenizer("english")`, on `re`."""
    # llama-index ships nltk's punkt_tab inside its package; putting that folder on nltk's path means nothing
    # is ever downloaded (this machine, and production, may have no network).
    import nltk
    from llama_index.core.utils import globals_helper

    globals_helper.wait_for_nltk_check()
    if globals_helper._nltk_data_dir not in nltk.data.path:
        nltk.data.path.append(globals_helper._nltk_data_dir)
    return _classes()[2]("english")


@cache
def untrained():
    """Punkt with no parameters, as llama-index's SentenceSplitter makes it, on `re`."""
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    language_vars, token, _ = _classes()
    return PunktSentenceTokenizer(lang_vars=language_vars(), token_cls=token)


def split_sentences(text: str) -> list[str]:
    """The SentenceSplitter's `chunking_tokenizer_fn`: llama-index's own splitting, on `untrained()`."""
    from llama_index.core.node_parser.text.utils import split_by_sentence_tokenizer_internal

    return split_by_sentence_tokenizer_internal(text, untrained())
