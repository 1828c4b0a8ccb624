"""/rollouts (api/routes/rollouts.py): a candidate snapshot tried on live traffic, its arms' figures and its
decisions (index_snapshots/rollouts.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from errors import InvalidInput


class RolloutRequest(BaseModel):
    """A candidate snapshot tried on live traffic; what is left out comes from the SNAPDEX_ROLLOUT_* settings."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"candidate": "9" * 64, "mode": "interleave", "steps": [0.1, 0.5, 1.0], "min_feedback": 200,
         "max_regression": 0.02, "confidence": 0.95}]})

    candidate: str = Field(pattern=r"^[0-9a-f]{64}$", description="hash of a built snapshot of the tenant")
    mode: Literal["interleave", "canary"] | None = Field(default=None, description=(
        "interleave: the live and candidate rankings merged in one answer; canary: a sticky share of sessions "
        "answered by the candidate"))
    share: float | None = Field(default=None, gt=0.0, le=1.0, allow_inf_nan=False, description=(
        "the first step's share of traffic (with `steps`: must be steps[0]; without: the default steps above it)"))
    steps: list[Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)]] | None = Field(
        default=None, min_length=1, max_length=10, description="traffic shares, rising; promotion after the last")
    min_feedback: int | None = Field(default=None, ge=10, le=1_000_000, description=(
        "feedback events (answers with feedback) each step needs before any decision"))
    max_regression: float | None = Field(default=None, ge=0.0, le=0.5, allow_inf_nan=False, description=(
        "how much worse than live the candidate may be and still advance (win-rate or success-rate difference)"))
    confidence: float | None = Field(default=None, ge=0.5, le=0.999, allow_inf_nan=False, description=(
        "of the sequential test's intervals"))

    def plan_args(self, default_steps: list[float]) -> dict:
        steps = self.steps
        if self.share is not None and steps is not None and steps[0] != self.share:
            raise InvalidInput(f"share={self.share} differs from steps[0]={steps[0]}: send one, or make them equal",
                               ("body", "share"))
        if self.share is not None and steps is None:
            steps = [self.share, *(s for s in default_steps if s > self.share)]
        return {"mode": self.mode, "steps": tuple(steps) if steps else None, "min_feedback": self.min_feedback,
                "max_regression": self.max_regression, "confidence": self.confidence}


class RolloutDecision(BaseModel):
    at: float
    action: Literal["start", "advance", "promote", "stop"]
    step: int
    share: float | None = None
    reason: str
    estimate: float | None = None
    interval: list[float | None] | None = Field(default=None, description="of candidate minus live, at confidence")
    events: int | None = Field(default=None, description="feedback events when it was decided")


class RolloutResponse(BaseModel):
    id: str
    candidate: str
    live: str = Field(description="the live snapshot when it started")
    mode: Literal["interleave", "canary"]
    state: Literal["running", "promoted", "stopped"]
    steps: list[float]
    step: int = Field(description="index into steps")
    share: float = Field(description="of traffic at this step")
    min_feedback: int
    max_regression: float
    confidence: float
    reason: str | None = Field(description="why it ended")
    started_by: str
    started_at: float
    updated_at: float
    ended_at: float | None
    feedback: int = Field(description="answers of the rollout with feedback")
    step_feedback: int = Field(description="of them, since this step began")
    arms: dict[str, Any] = Field(description=(
        "live and candidate: each arm's figures (interleave: answers won; canary: answers with a positive signal) "
        "with rate, low and high at `confidence`; ties (interleave); difference: candidate minus live, its interval "
        "and what the sequential test says now"))
    decisions: list[RolloutDecision] = Field(description="the decision log, oldest first")


class RolloutListResponse(BaseModel):
    rollouts: list[RolloutResponse] = Field(description="newest first")
