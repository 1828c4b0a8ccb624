"""BM25 as sparse vectors: one tokeniser shared by ingest and query, and the BM25 term weights.

Qdrant's IDF modifier supplies IDF at query time from the collection it searches, so a document vector
carries only BM25's term-frequency saturation: tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl)).
avgdl belongs to one snapshot, which is why document vectors are computed at build time from stored
term counts, never at ingest.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Iterable, Mapping, Sequence

import Stemmer

from encoders.stopwords import spacy_stop_words
from store.types import SparseVector

_WORD = re.compile(r"\w+", re.UNICODE)
# Han, Hiragana, Katakana (and its half-width forms), Hangul: scripts written without spaces between words. A run
# of them becomes overlapping character bigrams (a lone character stays a unigram), the usual word-segmenter-free
# way to make them searchable: a query's bigrams meet the document's wherever the words agree.
_CJK = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
                  r"\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]+")
DEFAULT_LANGUAGE = "en"
# ISO 639-1 code -> PyStemmer's Snowball algorithm: the languages BM25 stems (and drops spaCy's stop words of).
STEMMED = {
    "ar": "arabic", "ca": "catalan", "da": "danish", "de": "german", "el": "greek", "en": "english",
    "es": "spanish", "eu": "basque", "fi": "finnish", "fr": "french", "ga": "irish", "hi": "hindi",
    "hu": "hungarian", "hy": "armenian", "id": "indonesian", "it": "italian", "lt": "lithuanian", "ne": "nepali",
    "nl": "dutch", "no": "norwegian", "pt": "portuguese", "ro": "romanian", "ru": "russian", "sr": "serbian",
    "sv": "swedish", "ta": "tamil", "tr": "turkish", "yi": "yiddish",
}
# Written without spaces: character bigrams for their scripts; words in other scripts inside them (Latin names,
# English terms) are analysed as English.
CJK_LANGUAGES = ("ja", "ko", "zh")
LANGUAGES = tuple(sorted((*STEMMED, *CJK_LANGUAGES)))


@cache
def _analyser(language: str) -> tuple[Stemmer.Stemmer, frozenset[str]]:
    base = DEFAULT_LANGUAGE if language in CJK_LANGUAGES else language
    if base not in STEMMED:
        raise ValueError(f"language {language!r} is not one of {LANGUAGES}")
    return Stemmer.Stemmer(STEMMED[base]), spacy_stop_words(base)


_STOP = spacy_stop_words("en")
# Part of every snapshot hash, so it names what changes the terms: the stemmer's release (PyStemmer 2.2 and 3.1
# stem 75 of SciFact's 35,734 words differently) and the stop lists' content. lex3: the query side carries each
# term's frequency in the query, as BM25 sums over query tokens (lex2 weighted each query term once). lex4: each
# document is analysed in its own language (its stemmer and stop words), CJK runs as character bigrams, the query
# under every language of the snapshot it searches; English text is analysed exactly as under lex3.
TOKENIZER_VERSION = (
    f"lex4:lower+stop-{hashlib.sha256(' '.join(sorted(_STOP)).encode()).hexdigest()[:8]}"
    f"+snowball-en-pystemmer-{Stemmer.version()}+blake2b32"
    f"+langs-{hashlib.sha256(repr([(l, sorted(spacy_stop_words(l))) for l in sorted(STEMMED)]).encode()).hexdigest()[:8]}"
    "+cjk-bigram+lang-prefix"
)

# How a query's analyses in the snapshot's languages are weighed (ingest.language.query_language_weights): part of
# every answer's recipe, so evaluation runs made under equal weights are not reused. Documents' terms do not depend
# on it: snapshots keep their hash.
QUERY_LANGUAGE_WEIGHTS = "py3langid-probability-v1"


def _cjk_terms(word: str) -> tuple[list[str], list[str]]:
    """A word holding CJK characters: its CJK runs as bigrams, and the pieces between them as words."""
    grams: list[str] = []
    for run in _CJK.findall(word):
        grams.extend(run[i:i + 2] for i in range(max(len(run) - 1, 1)))
    return grams, [w for w in _CJK.split(word) if w]


def tokenize(text: str, language: str = DEFAULT_LANGUAGE) -> list[str]:
    """Lowercase, split on word characters, drop the language's stop words, Snowball-stem in it; CJK runs become
    character bigrams (in every language: a Japanese name in a German text is searchable too).

    Stems of a language other than English carry its code ("de:buch"): a query is analysed in every language of
    the snapshot, and its German stems must meet German documents only. Unprefixed, the German analysis of an
    English query made stems that matched English documents by accident (SciFact, English abstracts, queries also
    analysed in de/es/fr: BM25 nDCG@10 0.6887 -> 0.6563); prefixed, English documents are scored by the English
    analysis alone, as before. English stems and CJK bigrams carry no prefix."""
    stemmer, stop = _analyser(language)
    prefix = "" if language == DEFAULT_LANGUAGE or language in CJK_LANGUAGES else f"{language}:"
    words: list[str] = []
    out: list[str] = []

    def flush() -> None:
        stems = stemmer.stemWords(words)
        out.extend(f"{prefix}{w}" for w in stems) if prefix else out.extend(stems)
        words.clear()

    for w in _WORD.findall(text.lower()):
        if _CJK.search(w):
            grams, rest = _cjk_terms(w)
            flush()  # keep the order of terms: stem what came before, then the bigrams
            out.extend(grams)
            words.extend(x for x in rest if x not in stop)
        elif w not in stop:
            words.append(w)
    flush()
    return out


def has_cjk(text: str) -> bool:
    return _CJK.search(text) is not None


def check_language(language: str) -> str:
    """A language code as BM25 knows it (lowercased, region dropped: "de-AT" -> "de"); ValueError otherwise."""
    code = str(language).strip().lower().replace("_", "-").split("-")[0]
    if code not in LANGUAGES:
        raise ValueError(f"language {language!r} is not one of {', '.join(LANGUAGES)}")
    return code


@lru_cache(maxsize=200_000)
def term_id(term: str) -> int:
    # A hash, not a vocabulary numbered in set order: ids must agree between processes and snapshots.
    return int.from_bytes(hashlib.blake2b(term.encode("utf-8"), digest_size=4).digest(), "little")


def term_counts(text: str, language: str = DEFAULT_LANGUAGE) -> dict[str, int]:
    return dict(Counter(tokenize(text, language)))


@dataclass(frozen=True)
class BM25Params:
    k1: float = 1.2
    b: float = 0.75
    # Share of a chunk's weights taken from its whole document's (0: the chunk alone). A chunk sees only part of its
    # document's terms; with a share of the document's, a query term found elsewhere in the document still counts,
    # lower (see bench/bm25_leg_bench.py and README, "The BM25 leg against bm25s").
    document: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 < self.k1 <= 10.0:
            raise ValueError(f"bm25 k1={self.k1} is out of range (0, 10]")
        if not 0.0 <= self.b <= 1.0:
            raise ValueError(f"bm25 b={self.b} is out of range [0, 1]")
        if not 0.0 <= self.document <= 1.0:
            raise ValueError(f"bm25 document={self.document} is out of range [0, 1]")


def _to_sparse(weights: Mapping[int, float]) -> SparseVector:
    items = sorted(weights.items())
    return SparseVector(indices=[i for i, _ in items], values=[float(v) for _, v in items])


def _saturated(counts: Mapping[str, int], avgdl: float, params: BM25Params, share: float,
               weights: dict[int, float]) -> None:
    """Add `share` of BM25's saturated term frequencies of `counts` (length normalised by `avgdl`) to `weights`."""
    dl = sum(counts.values())
    norm = params.k1 * (1.0 - params.b + params.b * dl / avgdl) if avgdl > 0 else params.k1
    for term, tf in counts.items():
        tid = term_id(term)
        # Two terms hashing to one id add up, as they would in one posting list.
        w = tf * (params.k1 + 1.0) / (tf + norm)
        weights[tid] = weights.get(tid, 0.0) + (w if share == 1.0 else share * w)


def document_vector(counts: Mapping[str, int], avgdl: float, params: BM25Params,
                    document: Mapping[str, int] | None = None, document_avgdl: float = 0.0) -> SparseVector:
    """A chunk's BM25 weights: its terms' saturated frequencies, and with `params.document` > 0 that share of its
    whole document's (`document`: the document's term counts, `document_avgdl`: the snapshot's average document
    length), the chunk's own taking the rest."""
    weights: dict[int, float] = {}
    share = params.document if document else 0.0
    _saturated(counts, avgdl, params, 1.0 - share, weights)
    if share:
        _saturated(document, document_avgdl, params, share, weights)
    return _to_sparse(weights)


def query_counts(text: str, languages: Sequence[str] | Mapping[str, float] = (DEFAULT_LANGUAGE,)) -> Counter:
    """The query's terms under each language of the snapshot it searches. Stems of each language are its own terms
    (see `tokenize`); a term two analyses share (a CJK bigram) counts with its largest count, never their sum. With
    English alone this is exactly the English analysis.

    `languages` may map each language to a weight (ingest.language.query_language_weights: how likely the query is
    in it): a term counts `weight * count`. Documents of a language meet only its stems, so each is scored by its
    own language's analysis times that weight; with every weight 1 this is the plain sequence."""
    weights = languages if isinstance(languages, Mapping) else dict.fromkeys(languages, 1.0)
    counts: Counter = Counter()
    for language, weight in (weights or {DEFAULT_LANGUAGE: 1.0}).items():
        for term, tf in Counter(tokenize(text, language)).items():
            counts[term] = max(counts[term], tf * weight if weight != 1.0 else tf)
    return counts


def query_vector(text: str, extra_terms: Mapping[str, float] | None = None,
                 languages: Sequence[str] | Mapping[str, float] = (DEFAULT_LANGUAGE,)) -> SparseVector:
    """BM25's query side: score = sum over query *tokens* (repeats included) of idf * saturated tf, so each term
    weighs its count in the query, as in rank-bm25, bm25s and Lucene. Weighting each term once departs from BM25
    on long queries, where terms repeat: 0.426 against 0.494 nDCG@10 on a set of paragraph-long queries.
    `extra_terms` are already-tokenised terms with their own weights (pseudo-relevance feedback), added where not
    in the query. `languages`: those of the snapshot's documents, or their weights for this query (see
    `query_counts`)."""
    weights: dict[int, float] = {}
    for term, tf in query_counts(text, languages).items():
        tid = term_id(term)
        weights[tid] = weights.get(tid, 0.0) + float(tf)  # two terms hashing to one id add up, as in documents
    for term, w in (extra_terms or {}).items():
        weights.setdefault(term_id(term), float(w))
    return _to_sparse(weights)


def average_length(all_counts: Iterable[Mapping[str, int]]) -> float:
    total = n = 0
    for counts in all_counts:
        total += sum(counts.values())
        n += 1
    return total / n if n else 0.0
