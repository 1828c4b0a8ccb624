"""/benchmarks (api/routes/benchmarks.py): runs of bench/peer_bench.py, imported and summarised."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from errors import InvalidInput
from wire.common import parse_date


Measure = Annotated[float, Field(ge=0, allow_inf_nan=False)]


Score = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


def _iso_date(v: str) -> str:
    """A run's `date` (the body's field: a domain error raised in a schema check answers as a route's would, so it
    names its field itself)."""
    try:
        parse_date(v)  # kept as written: the run names its own date; the store orders by the instant
    except InvalidInput as e:
        raise InvalidInput(str(e), ("body", "date")) from None
    return v


class BenchmarkQualityIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    ndcg_at_10: Score = Field(alias="ndcg@10")
    recall_at_10: Score | None = Field(default=None, alias="recall@10")
    recall_at_100: Score = Field(alias="recall@100")


class BenchmarkLatencyIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    p50: Measure = Field(description="milliseconds")
    p95: Measure = Field(description="milliseconds")


class BenchmarkSystemIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    label: str | None = Field(default=None, max_length=500)
    quality: BenchmarkQualityIn
    latency_ms: BenchmarkLatencyIn
    build_s: Measure | None = None
    peak_rss_mib: Measure | None = None


class BenchmarkSystemsIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    snapdex_default: BenchmarkSystemIn = Field(alias="snapdex default")
    snapdex_first_stage: BenchmarkSystemIn | None = Field(default=None, alias="snapdex first stage")
    peer: BenchmarkSystemIn
    bm25s: BenchmarkSystemIn | None = None


class BenchmarkGitIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    commit: str = Field(pattern=r"^[0-9a-f]{7,40}$", description="the commit measured")
    dirty: bool | None = Field(default=None, description="uncommitted changes were measured too")


class Benchmark100kIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    first_stage_latency_ms: BenchmarkLatencyIn


class BenchmarkRebuildIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    fraction_of_cold: Measure


class BenchmarkIngestIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    pipeline_overhead_pct: float = Field(allow_inf_nan=False)


class BenchmarkTargetIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    value: float | None = Field(default=None, allow_inf_nan=False)
    bound: float | None = Field(default=None, allow_inf_nan=False)
    met: bool


class BenchmarkImportRequest(BaseModel):
    """One run of bench/peer_bench.py, as it writes bench/results/peers.json; stored whole, other keys included."""

    model_config = ConfigDict(extra="allow")

    date: Annotated[str, AfterValidator(_iso_date)] = Field(
        max_length=64, description="when the run started, ISO 8601 (e.g. 2026-11-25T03:36:13+00:00)",
        json_schema_extra={"format": "date-time"})
    git: BenchmarkGitIn
    machine: str | None = Field(default=None, max_length=500)
    cpu: str | None = Field(default=None, max_length=500)
    systems: BenchmarkSystemsIn
    at_100k: Benchmark100kIn | None = Field(default=None, alias="100k", description="the 100k-chunk index")
    rebuild: BenchmarkRebuildIn | None = None
    ingest: BenchmarkIngestIn | None = None
    wall_s: Measure | None = Field(default=None, description="the whole command, seconds")
    targets: dict[str, BenchmarkTargetIn] | None = None
    table: str | None = None

    def body(self) -> dict[str, Any]:
        """The run as it was sent: the keys it had, under their own names. Python mode, because JSON mode would
        turn a NaN the reader let through into null silently: the store refuses it instead."""
        return self.model_dump(by_alias=True, exclude_unset=True)


class BenchmarkPair(BaseModel):
    snapdex: float | None = Field(description="snapdex's default pipeline")
    peer: float | None


class BenchmarkTargets(BaseModel):
    met: int
    total: int
    missed: list[str] = Field(description="names of the targets missed")


class BenchmarkResponse(BaseModel):
    """One run's summary: snapdex against the do-it-yourself peer."""

    id: int
    name: str
    date: str = Field(description="when the run started, as the benchmark wrote it")
    run_at: float = Field(description="the same instant, epoch seconds")
    commit: str
    dirty: bool | None
    machine: str | None
    cpu: str | None
    imported_at: float
    ndcg_at_10: BenchmarkPair
    recall_at_100: BenchmarkPair
    first_stage_p95_ms: float | None = Field(description="snapdex's first stage over HTTP")
    peer_p95_ms: float | None
    first_stage_p95_ratio: float | None = Field(description="first_stage_p95_ms / peer_p95_ms")
    p95_100k_ms: float | None = Field(description="first stage over a 100k-chunk index")
    build_s: BenchmarkPair
    wall_s: float | None = Field(description="the whole benchmark command, seconds")
    targets: BenchmarkTargets
    created: bool | None = Field(default=None, description="on import: false when this run was imported before")

    @classmethod
    def from_run(cls, run: Any, **extra: Any) -> "BenchmarkResponse":
        return cls(**run.summary(), **extra)


class BenchmarkDetailResponse(BenchmarkResponse):
    run: dict[str, Any] = Field(description="the whole JSON the benchmark wrote")

    @classmethod
    def from_run(cls, run: Any, **extra: Any) -> "BenchmarkDetailResponse":
        return cls(**run.summary(), run=run.body, **extra)


class BenchmarkListResponse(BaseModel):
    benchmarks: list[BenchmarkResponse] = Field(description="newest run first")

