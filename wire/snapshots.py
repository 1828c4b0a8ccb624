"""/snapshots (api/routes/snapshots.py): the snapshots of a tenant, their builds and the promotion gate's verdicts."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field


class SnapshotStatus(StrEnum):
    BUILDING = "building"
    CANDIDATE = "candidate"
    LIVE = "live"
    RETIRED = "retired"
    FAILED = "failed"
    DELETED = "deleted"


class SnapshotResponse(BaseModel):
    hash: str
    collection: str
    status: SnapshotStatus
    parent: str | None
    created_at: float
    built_at: float | None
    documents: int
    chunks: int
    embedded: int = Field(description="chunks that went through the embedding model for this build")
    reused: int = Field(description="chunks whose vectors came from the embedding cache")
    build_seconds: float | None
    config: dict[str, Any]
    reason: str | None
    gate: GateVerdictOut | None = Field(default=None, description="the promotion gate's verdict, once judged")

    @classmethod
    def from_row(cls, r: Any, verdict: Any = None) -> "SnapshotResponse":
        fields = {k: getattr(r, k) for k in cls.model_fields if k != "gate"}
        return cls(**fields, gate=GateVerdictOut.from_verdict(verdict) if verdict else None)


class SnapshotListResponse(BaseModel):
    tenant: str
    live: str | None
    previous: str | None
    config_drift: list[str] = Field(description="parts of the live snapshot's config that differ from this service's")
    snapshots: list[SnapshotResponse]


class RebuildResponse(BaseModel):
    status: Literal["queued"] = "queued"
    tenant: str


class SwitchResponse(BaseModel):
    tenant: str
    live: str
    previous: str | None


class GateVerdictOut(BaseModel):
    passed: bool
    reasons: list[str]
    checks: list[dict[str, Any]]
    baseline: str | None = Field(description="the live snapshot it was compared with")
    decided_at: float
    override_at: float | None = Field(description="promoted by hand although it failed")
    runs: list[str]

    @classmethod
    def from_verdict(cls, v: Any) -> "GateVerdictOut":
        return cls(passed=v.passed, reasons=v.reasons, checks=v.checks, baseline=v.baseline, decided_at=v.decided_at,
                   override_at=v.override_at, runs=v.runs)

