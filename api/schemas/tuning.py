"""/tuning and /profiles (api/routes/tuning.py): retrieval profiles and self-tuning."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from wire.common import Label


class TuningRequestIn(BaseModel):
    """Search the stage parameters on the tenant's labelled queries, by k-fold cross-validation."""

    model_config = ConfigDict(extra="forbid")

    query_sets: list[Label] = Field(default_factory=list, max_length=100,
                                  description="names of active query sets; empty: every active set")
    folds: int = Field(default=5, ge=2, le=20, description="k of the k-fold cross-validation")
    metric: Label = Field(default="ndcg@10", description="what the search maximises, e.g. ndcg@10 or recall@10")
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="of the fold assignment and the bootstrap")
    level: float = Field(default=0.95, gt=0.5, lt=1.0, allow_inf_nan=False,
                         description="confidence of the bootstrap interval the gain over the live profile must clear")
    synthetic: bool = Field(default=False, description=(
        "tune without labels: on queries made from the tenant's own documents (titles, headings, held-out "
        "sentences, each against its document) instead of its query sets; judged the same way"))


class TuningQueued(BaseModel):
    tuning_id: str
    status: Literal["queued"] = "queued"
    tenant: str


class TuningResponse(BaseModel):
    id: str
    tenant: str
    trigger: Literal["request", "build"]
    status: Literal["queued", "running", "done", "failed"]
    request: dict[str, Any]
    progress: dict[str, Any] = Field(description="queries, folds, folds_done, configurations scored so far")
    result: dict[str, Any] | None = Field(description="decision (adopted | rejected | unchanged), reason, params, "
                                          "scores (tuned_cv, live, default, the paired test), seconds")
    profile_version: int | None = Field(description="the profile version this run recorded")
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None

    @classmethod
    def from_run(cls, r: Any) -> "TuningResponse":
        return cls(id=r.id, tenant=r.tenant, trigger=r.trigger, status=r.status, request=r.request,
                   progress=r.progress, result=r.result, profile_version=r.profile_version, error=r.error,
                   created_at=r.created_at, started_at=r.started_at, finished_at=r.finished_at)


class TuningListResponse(BaseModel):
    tenant: str
    runs: list[TuningResponse] = Field(description="newest first")


class ProfileResponse(BaseModel):
    version: int = Field(description="0 is the service's global default")
    status: Literal["live", "retired", "rejected"]
    params: dict[str, Any] = Field(description="stage parameters; the global default's are the service's settings")
    scores: dict[str, Any] = Field(description="cross-validated scores: tuned_cv (held out), live, default, test")
    reason: str | None
    tuning_id: str | None
    created_at: float | None

    @classmethod
    def from_profile(cls, p: Any, status: str | None = None) -> "ProfileResponse":
        return cls(version=p.version, status=status or p.status, params=p.params, scores=p.scores, reason=p.reason,
                   tuning_id=p.tuning_id, created_at=p.created_at)


class ProfileListResponse(BaseModel):
    tenant: str
    live: int = Field(description="the live version (0: the global default)")
    previous: int | None = Field(description="what a rollback returns to")
    default: dict[str, Any] = Field(description="the global default's stage parameters")
    profiles: list[ProfileResponse] = Field(description="every recorded version, newest first")
    switches: list[dict[str, Any]] = Field(description="every change of the live profile: at, from_version, "
                                           "to_version, action (adopt | rollback | manual)")


class ProfileSwitchResponse(BaseModel):
    tenant: str
    live: int
    previous: int | None

