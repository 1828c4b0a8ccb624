"""Retrieval options, defined once: every stage's name and every bounded knob, with its range and default.

`Settings` (snapdex/settings.py), the request schemas (api/), the stage configs (retrieval/pipeline.py and the
stages' own checks) and the tuning search space (index_snapshots/tuning.py) are built from this module, so a name or
a bound is written here and nowhere else. Adding a reranker: its class in its own file under retrieval/ (with
`from_settings`), and one row of `RERANKERS` below; `Rerank`, the runtime (`build_stages`) and self-tuning (`tuned`)
follow from the row.

It sits below every package, beside errors/ (it imports only typing, pydantic and errors/): the store checks its
vector datatypes and fusions against it, the encoders their backends, and importing `snapdex.settings` must load no
heavy library through it. (retrieval/options.py would put it above store/ and encoders/, which need it too.)
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from pydantic import Field

from errors import InvalidInput

# Stage names. The order of each list is the order messages and the OpenAPI document show them in.
FirstStage = Literal["hybrid", "dense", "bm25"]  # both legs, or one alone (for comparisons)
# dbsf and rrf run in Qdrant over each leg's candidates; zscore rescores every candidate of either leg on both legs
# and sums their z-scores over those candidates.
Fusion = Literal["dbsf", "rrf", "zscore"]
StoreFusion = Literal["rrf", "dbsf"]  # those the vector stores run themselves


@dataclass(frozen=True)
class Stage:
    """Where a named stage's class lives, imported only when the runtime builds it (a model's library loads only
    where it is configured); the class builds itself from the settings (`from_settings`). `needs`: the setting
    without which the stage is not offered; `tuned`: self-tuning tries it (cheap enough to score dozens of times)."""

    path: str  # "module:Class"
    needs: str | None = None
    tuned: bool = False


# A second stage or a rewriter is one row here and its own file under retrieval/.
RERANKERS: dict[str, Stage] = {
    "late-interaction": Stage("retrieval.late_interaction:LateInteractionReranker", tuned=True),
    # A sentence-transformers CrossEncoder folder; torch loads only where one is configured.
    "cross-encoder": Stage("retrieval.cross_encoder:CrossEncoderReranker", needs="cross_encoder_path"),
}
REWRITERS: dict[str, Stage] = {
    "normalize": Stage("retrieval.rewrite:NormalizeRewriter"),
    "prf": Stage("retrieval.feedback:PseudoRelevanceRewriter", tuned=True),
    "llm": Stage("retrieval.rewrite:LLMRewriter", needs="llm_base_url"),
}
NONE = "none"  # no second stage, no rewriting: always offered, and tried by tuning
Rerank = Literal[(*RERANKERS, NONE)]  # type: ignore[valid-type]
Rewrite = Literal[(NONE, *REWRITERS)]  # type: ignore[valid-type]
LlmMode = Literal["multi_query", "hyde"]  # how the LLM rewriter rewrites
# Which word pieces of a query past `query_embed_tokens` the dense leg embeds: its first ones, its last ones (a chat
# turn's newest text), or the first half of the bound and the last half.
QueryEmbedKeep = Literal["head", "tail", "ends"]
# How a query longer than the model's input is combined: the token-weighted mean of its windows' vectors; "max-sim"
# also scores sentence windows by each query window's best match.
LongQueryCombine = Literal["mean", "max-sim"]
# Sentence-window vectors: pooled from the chunk's own pass ("late") or each window embedded alone.
WindowMethod = Literal["late", "standalone"]
# Near-duplicate documents at retrieval: "collapse" keeps the newest twin's hits, "keep-all" ranks every twin's.
TwinPolicy = Literal["collapse", "keep-all"]
GroupBy = Literal["document"]
EmbedderBackend = Literal["torch", "onnx", "onnx-int8"]  # the model's backends
# Not a model: the deterministic HashEmbedder, for tests and offline demos whose point is not ranking quality (no
# model loads; its own model id, so its snapshots and cache entries never mix with a model's).
FakeEmbedder = Literal["hash"]
# How dense and window vectors are stored. float16 halves what float32 takes, scores moving by about 1e-3; turbo8
# (Qdrant's TurboQuant, 8 bits a dimension) takes about a quarter, scores moving by about 1e-2 (README, "Memory").
VectorDatatype = Literal["float32", "float16", "turbo8"]
# How the dense leg finds its candidates (Settings.dense_index): an exact scan of every vector, Qdrant's HNSW graph,
# or the graph from a snapshot of `dense_index_threshold` chunks on.
DenseIndexMode = Literal["exact", "hnsw", "auto"]

FIRST_STAGES: tuple[str, ...] = get_args(FirstStage)
FUSIONS: tuple[str, ...] = get_args(Fusion)
STORE_FUSIONS: tuple[str, ...] = get_args(StoreFusion)
RERANKS: tuple[str, ...] = get_args(Rerank)
REWRITES: tuple[str, ...] = get_args(Rewrite)
LLM_MODES: tuple[str, ...] = get_args(LlmMode)
LONG_QUERY_COMBINES: tuple[str, ...] = get_args(LongQueryCombine)
QUERY_EMBED_KEEPS: tuple[str, ...] = get_args(QueryEmbedKeep)
WINDOW_METHODS: tuple[str, ...] = get_args(WindowMethod)
TWIN_POLICIES: tuple[str, ...] = get_args(TwinPolicy)
GROUP_BYS: tuple[str, ...] = get_args(GroupBy)
EMBEDDER_BACKENDS: tuple[str, ...] = get_args(EmbedderBackend)
FAKE_EMBEDDER: str = get_args(FakeEmbedder)[0]
VECTOR_DATATYPES: tuple[str, ...] = get_args(VectorDatatype)
DENSE_INDEX_MODES: tuple[str, ...] = get_args(DenseIndexMode)


def check_choice(what: str, value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InvalidInput(f"{what}={value!r} is not one of {allowed}")
    return value  # type: ignore[return-value]


@dataclass(frozen=True)
class Knob:
    """A bounded numeric stage parameter: what a profile sets and a request may override. `setting` is its
    SNAPDEX_ name (without the prefix) where it has a service-wide default; `search` the values self-tuning tries
    besides the default (empty: tuning leaves it alone)."""

    name: str
    kind: type  # int or float
    low: float
    high: float
    default: Any
    description: str | None = None
    setting: str | None = None
    search: tuple = ()

    @property
    def type(self) -> Any:
        """The value's type with its range, for a pydantic field (a setting's or a request's)."""
        if self.kind is float:
            return Annotated[float, Field(ge=self.low, le=self.high, allow_inf_nan=False)]
        return Annotated[int, Field(ge=self.low, le=self.high)]

    def check(self, value: Any, what: str | None = None) -> Any:
        """The stage config's own check (a profile's parameters reach it without a schema)."""
        if value is None and self.default is None:
            return value
        if not self.low <= value <= self.high:
            raise InvalidInput(f"{what or self.name}={value} is out of range [{self.low:g}, {self.high:g}]")
        return value


_WEIGHT = dict(kind=float, low=0, high=10)
KNOBS: dict[str, Knob] = {k.name: k for k in (
    Knob("candidates", int, 1, 1000, 100, "per leg, before fusion", "retrieval_candidates", (50, 100, 200)),
    Knob("rrf_k", int, 1, 1000, 60, None, "retrieval_rrf_k"),
    Knob("fusion_dense", **_WEIGHT, default=0.5, description="zscore fusion: weight of the dense leg",
         setting="retrieval_fusion_dense", search=(0.3, 0.5, 0.7)),
    # Only the ratio of the two weights orders the candidates: tuning moves the dense one alone.
    Knob("fusion_bm25", **_WEIGHT, default=0.5, description="zscore fusion: weight of the BM25 leg",
         setting="retrieval_fusion_bm25"),
    Knob("rerank_depth", int, 1, 200, 100, "fused candidates reranked", "rerank_depth", (50, 100, 200)),
    Knob("max_per_document", int, 1, 100, None, "cap of chunks per document", "max_chunks_per_document",
         (None, 1, 2)),
    Knob("late_dense", **_WEIGHT, default=0.0, description="late interaction: weight of the whole-chunk dense leg",
         setting="late_weight_dense", search=(0.0, 0.5, 1.0)),
    Knob("late_bm25", **_WEIGHT, default=1.0, description="late interaction: weight of the BM25 leg",
         setting="late_weight_bm25", search=(0.5, 1.0, 1.5)),
    Knob("late_windows", **_WEIGHT, default=1.0, description="late interaction: weight of the best sentence window",
         setting="late_weight_windows", search=(0.0, 0.5, 1.0, 1.5, 2.0)),
    # The dense leg embeds at most this many word pieces of a query (0: all of them; BM25 always reads it whole):
    # the model's time is its word pieces (~0.1 ms each on 2 cores), and a 300-word query has ~470-570. 128, the
    # first and last 62 (query_embed_keep "ends"), held nDCG@10 and recall@100 on the test splits of SciFact,
    # pydocs-passages and pydocs-docstrings at or above the whole query's, for ~30 % of the model's time (256 did too,
    # for ~55 %: README, "Long queries and deep lists").
    Knob("query_embed_tokens", int, 0, 100_000, 128, "word pieces of a long query the dense leg embeds (0: all)",
         "query_embed_tokens"),
    # Queries longer than this many word pieces (0: none) are scored with the late_long_* weights instead.
    Knob("late_long_tokens", int, 0, 100_000, 128, None, "late_long_tokens"),
    Knob("late_long_dense", **_WEIGHT, default=0.5, setting="late_long_weight_dense",
         search=(0.0, 0.5, 1.0, 1.5)),
    Knob("late_long_bm25", **_WEIGHT, default=1.0, setting="late_long_weight_bm25", search=(0.5, 1.0, 1.5)),
    Knob("late_long_windows", **_WEIGHT, default=1.0, setting="late_long_weight_windows",
         search=(0.0, 0.5, 1.0, 1.5)),
)}
# The late-interaction stage's weights, short and long queries, and the legs they weigh.
LATE = ("late_dense", "late_bm25", "late_windows")
LATE_LONG = ("late_long_dense", "late_long_bm25", "late_long_windows")

# The named stages a profile sets and a request may override: StageConfig's field -> (setting, names, default).
# The default is the service's (Settings); the stage config's own default is the same.
STAGE_NAMES: dict[str, tuple[str | None, tuple[str, ...], str]] = {
    "first_stage": (None, FIRST_STAGES, "hybrid"),
    # zscore: the same answer on every call; RRF's tied scores reorder between calls.
    "fusion": ("retrieval_fusion", FUSIONS, "zscore"),
    "rerank": ("rerank", RERANKS, "none"),
    "rewrite": ("rewrite", REWRITES, "none"),
}

# Annotated types, one per knob, for the settings and the request schemas.
Candidates = KNOBS["candidates"].type
RrfK = KNOBS["rrf_k"].type
RerankDepth = KNOBS["rerank_depth"].type
MaxPerDocument = KNOBS["max_per_document"].type
LateLongTokens = KNOBS["late_long_tokens"].type
QueryEmbedTokens = KNOBS["query_embed_tokens"].type
Weight = KNOBS["fusion_dense"].type  # every stage weight: fusion's and late interaction's


def knob_field(name: str) -> Any:
    """A request's override of a knob: absent (None) unless sent, described as the knob is."""
    description = KNOBS[name].description
    return Field(default=None, description=description) if description else None


def default(name: str) -> Any:
    """The service's default of a knob or a named stage."""
    return KNOBS[name].default if name in KNOBS else STAGE_NAMES[name][2]


def settings_map() -> dict[str, str]:
    """StageConfig field -> the Settings field that holds its service-wide default."""
    named = {field: setting for field, (setting, _, _) in STAGE_NAMES.items() if setting}
    return {**named, **{k.name: k.setting for k in KNOBS.values() if k.setting}}


def build_stages(table: dict[str, Stage], settings: Any) -> dict[str, Any]:
    """The stages of `table` this service offers, built from its settings ("none" included, as None)."""
    built: dict[str, Any] = {NONE: None}
    for name, stage in table.items():
        if stage.needs is None or getattr(settings, stage.needs):
            module, cls = stage.path.split(":")
            built[name] = getattr(importlib.import_module(module), cls).from_settings(settings)
    return built


def tuned(table: dict[str, Stage], offered: Any) -> list[str]:
    """The stages of `table` self-tuning tries among those `offered` (besides "none", always tried)."""
    return [name for name, stage in table.items() if stage.tuned and name in offered]
