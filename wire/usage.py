"""POST /usage and /feedback (api/routes/usage.py): what became of an answer."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from wire.common import DocId, Label, PrincipalIn
from wire.ids import MAX_ID_CHARS


MAX_CITED = 100


class UsageRequest(BaseModel):
    """Which parts of a /retrieve answer the answer written from it used (eval/usage.py)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"request_id": "5f0c2d9e8b7a4c1d9e6f3a2b1c0d9e8f", "cited": ["[1]", "[3]"], "helpful": True}]})

    request_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$", description=(
        "the request_id of an answer this key (and principal) got from /retrieve, or MCP's search or get_context, "
        "within SNAPDEX_USAGE_WINDOW_S"))
    cited: list[Annotated[Label, Field(min_length=1, max_length=MAX_ID_CHARS)]] = Field(
        default_factory=list, max_length=MAX_CITED, description=(
            'what the answer used: citation labels of that answer ("[2]": its context passages, or its hits in '
            "order when it had no context block), chunk ids or document ids it held"))
    helpful: bool | None = Field(default=None, description="what the end user thought of the answer, if known")
    principal: PrincipalIn | None = Field(default=None, description=(
        "service keys: the end user the answer was for, as /retrieve named them. A user key may not send one"))


class UsageCited(BaseModel):
    ref: str = Field(description="as reported")
    citation: str | None = Field(description="the citation label, when the reference was one")
    doc_id: str
    chunk_ids: list[str] = Field(description="the answer's hits this reference covers")


class UsageResponse(BaseModel):
    request_id: str
    snapshot: str = Field(description="the snapshot that gave the answer reported on")
    cited: list[UsageCited]
    helpful: bool | None
    replaced: bool = Field(description="an earlier report on the same answer by the same reporter was replaced")


class FeedbackSignal(BaseModel):
    """One signal on a chunk or a document of the answer: name exactly one of them."""

    model_config = ConfigDict(extra="forbid")

    chunk_id: str | None = Field(default=None, min_length=1, max_length=MAX_ID_CHARS, pattern=r"^[0-9a-f]+$",
                                 description="a hit of the answer")
    doc_id: DocId | None = Field(default=None, description="a document of the answer's hits or context passages")
    signal: Literal["cited", "clicked", "helpful", "not_helpful"]

    @model_validator(mode="after")
    def _one_target(self) -> "FeedbackSignal":
        if (self.chunk_id is None) == (self.doc_id is None):
            raise ValueError("a signal names exactly one of chunk_id and doc_id")
        return self

    def target(self) -> tuple[str, str, str]:
        return ("chunk", self.chunk_id, self.signal) if self.chunk_id else ("doc", self.doc_id, self.signal)


class FeedbackRequest(BaseModel):
    """What the chat backend saw of a /retrieve answer: the hits its model cited, the user clicked or judged, and
    whether the answer helped (eval/feedback.py)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"request_id": "5f0c2d9e8b7a4c1d9e6f3a2b1c0d9e8f", "helpful": True,
         "signals": [{"chunk_id": "5d1f" + "0" * 60, "signal": "cited"},
                     {"doc_id": "handbook", "signal": "clicked"}]}]})

    request_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$", description=(
        "the request_id of an answer this key (and principal) got from /retrieve within SNAPDEX_FEEDBACK_WINDOW_S"))
    signals: list[FeedbackSignal] = Field(default_factory=list, max_length=MAX_CITED, description=(
        "each names a chunk_id or a doc_id the answer held; the same signal twice counts once"))
    helpful: bool | None = Field(default=None, description="what the end user thought of the whole answer, if known")
    principal: PrincipalIn | None = Field(default=None, description=(
        "service keys: the end user the answer was for, as /retrieve named them. A user key may not send one"))

    @model_validator(mode="after")
    def _something(self) -> "FeedbackRequest":
        if not self.signals and self.helpful is None:
            raise ValueError("feedback needs signals, helpful, or both")
        return self


class FeedbackSignalOut(BaseModel):
    chunk_id: str | None
    doc_id: str = Field(description="the document credited (a chunk's first document)")
    signal: str
    position: int | None = Field(description="1-based rank of the hit in the answer (a document: its first hit's); "
                                             "null for a document only a context passage showed")
    new: bool = Field(description="false: the same signal was stored already, and counts once")


class FeedbackResponse(BaseModel):
    request_id: str
    snapshot: str = Field(description="the snapshot that gave the answer")
    helpful: bool | None
    recorded: int = Field(description="signals stored now (helpful included)")
    duplicates: int = Field(description="signals stored already, by an earlier report: counted once")
    signals: list[FeedbackSignalOut]

