"""ingest/sentences.py: punkt on `re` cuts every text exactly where nltk's stock tokenizers do, so chunks and
sentence windows are what they were (no snapshot hash moves), only faster."""

from __future__ import annotations

import itertools
import json

import pytest
from nltk.tokenize.punkt import PunktSentenceTokenizer, PunktTokenizer

from ingest import sentences
from ingest.chunking import Chunker, ChunkerConfig

# Shapes punkt decides with its patterns: abbreviations, initials, numbers, ellipses, closing quotes of every kind,
# multi-character punctuation, other sentence ends, non-Latin letters, odd white space.
EDGE_CASES = [
    "",
    "   \n\t ",
    "No sentence end",
    "Dr. Smith met Mr. J. R. R. Tolkien at 3.5 p.m. on Jan. 4. They talked... for hours. Then left.",
    'He said "Stop." Then she said \u201cGo.\u201d And \u2018why?\u2019 \u00abNon.\u00bb (See Fig. 2.) Done!',
    "Wait -- really?! Yes!! No?? Maybe.\n\nNew paragraph. e.g. this, i.e. that. Cf. the U.S.A. and U.K. rules.",
    "Values: 1,234.56 and -0.5. Version 2.0.1. Items 1. 2. 3. follow. A.B.C. D. E.",
    "Ünïcödé wörds. Ελληνικά κείμενα. Кириллица тоже. 中文句子。 日本語の文。 Fin.",
    "Trailing spaces.    \n   Next line.\t\tTabbed sentence.\r\nWindows line.",
    ". . . .. ... .... Start with dots. " + "word. " * 50,
    "a" * 500 + ". " + "b" * 500 + "! " + "(" * 100 + "x." + ")" * 100,
]


@pytest.fixture(scope="module")
def texts(scifact_dir) -> list[str]:
    with open(scifact_dir / "corpus.jsonl") as fh:
        docs = [json.loads(line) for line in itertools.islice(fh, 600)]
    return EDGE_CASES + [f"{d['title']}\n\n{d['text']}" for d in docs]


@pytest.fixture(scope="module")
def stock_english() -> PunktTokenizer:
    sentences.english()  # puts llama-index's punkt_tab folder on nltk's path
    return PunktTokenizer("english")


def test_english_spans_are_the_stock_tokenizers(texts, stock_english):
    fast = sentences.english()
    for text in texts:
        assert list(fast.span_tokenize(text)) == list(stock_english.span_tokenize(text)), text[:80]


def test_untrained_spans_are_the_stock_tokenizers(texts):
    stock, fast = PunktSentenceTokenizer(), sentences.untrained()
    for text in texts:
        assert list(fast.span_tokenize(text)) == list(stock.span_tokenize(text)), text[:80]


def test_the_patterns_run_on_re():
    # The point of the module: none of the patterns punkt applies goes through nltk's timed `regex` wrapper.
    import re

    tokenizer = sentences.english()
    lang_vars = tokenizer._lang_vars
    patterns = [lang_vars.period_context_re(), lang_vars._word_tokenizer_re(), lang_vars.re_boundary_realignment,
                tokenizer._Token._RE_NUMERIC, tokenizer._Token._RE_ALPHA]
    assert all(isinstance(p, re.Pattern) for p in patterns)


def test_chunks_are_llama_index_defaults(texts):
    from llama_index.core.node_parser import SentenceSplitter

    config = ChunkerConfig(chunk_size=64, chunk_overlap=8)  # small: most abstracts are cut at sentences
    stock = SentenceSplitter(chunk_size=config.chunk_size, chunk_overlap=config.chunk_overlap)
    chunker = Chunker(config)
    for text in texts[:200]:
        assert chunker._splitter.split_text(text) == stock.split_text(text), text[:80]


def test_split_sentences_covers_the_text(texts):
    # llama-index's contract for a chunking_tokenizer_fn: the pieces, joined, are the text after the first cut.
    for text in texts[:50]:
        pieces = sentences.split_sentences(text)
        if pieces:
            assert text.endswith("".join(pieces))
