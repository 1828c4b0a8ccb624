"""Request and response bodies of /sources (api/routes/sources.py). Field names are the contract of issue 37."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from sources.kinds import KINDS
from sources.store import COUNTS, MAX_FAILURES
from sources.sync import RESERVED_METADATA
from wire.common import AccessIn, Metadata, NonBlank, _no_control

SourceName = Annotated[NonBlank, AfterValidator(_no_control), Field(min_length=1, max_length=128)]
Kind = Literal["folder", "s3", "git", "web"]
assert set(KINDS) == {"folder", "s3", "git", "web"}  # noqa: S101 - the Literal above names every registered kind


class Every(BaseModel):
    model_config = ConfigDict(extra="forbid")

    every_s: float = Field(gt=0, description="seconds between syncs (at least SNAPDEX_SOURCE_MIN_INTERVAL_S)")


Schedule = Annotated[str, Field(min_length=1, max_length=200, description=(
    'a cron expression of five fields, in UTC, e.g. "*/30 * * * *"'))] | Every | None

_CONFIG_DOC = ("what the kind needs (README, \"Sources\"): folder {path, include, exclude}; s3 {bucket, prefix, "
               "endpoint_url, region, access_key_id, secret_access_key, include, exclude}; git {url, branch, include, "
               "exclude, username, token}; web {url, sitemap, prefix, max_depth, max_pages}. Credentials are sealed "
               "at rest and never shown")


def _no_reserved(metadata: dict) -> dict:
    taken = sorted(set(metadata) & set(RESERVED_METADATA))
    if taken:
        raise ValueError(f"metadata fields {taken} are set by every sync; name yours otherwise")
    return metadata


SourceMetadata = Annotated[Metadata, AfterValidator(_no_reserved)]


class SourceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "handbook", "kind": "folder", "config": {"path": "/srv/handbook", "include": ["*.md"]},
         "schedule": "*/30 * * * *", "metadata": {"team": "hr"}, "access": {"groups": ["staff"]}}]})

    name: SourceName = Field(description="unique within the tenant")
    kind: Kind
    config: dict[str, Any] = Field(description=_CONFIG_DOC)
    schedule: Schedule = Field(default=None, description='cron ("*/30 * * * *"), {"every_s": 1800}, or null: '
                                                         "syncs on request only")
    metadata: SourceMetadata = Field(default_factory=dict, description="every document of the source carries it")
    access: AccessIn | None = Field(default=None, description=(
        "who may read its documents (a document's own list set later wins); absent: the whole tenant"))


class SourcePatch(BaseModel):
    """Only the fields sent change. `config` is merged into the stored one (JSON merge patch: a field set to null
    goes back to its default); `schedule` and `access` may be set to null."""

    model_config = ConfigDict(extra="forbid")

    name: SourceName | None = None
    config: dict[str, Any] | None = Field(default=None, description="fields to change; null removes one")
    schedule: Schedule = None
    metadata: SourceMetadata | None = None
    access: AccessIn | None = None

    @field_validator("name", "metadata")
    @classmethod
    def _not_null(cls, v):
        if v is None:
            raise ValueError("may be left out, not null")
        return v


class SyncCounts(BaseModel):
    listed: int = Field(description="items the listing found")
    new: int
    changed: int
    unchanged: int
    deleted: int = Field(description="items gone since the last sync: their documents leave the next snapshot")
    failed: int = Field(description="items that could not be read or parsed: read again at the next sync")


assert set(SyncCounts.model_fields) == set(COUNTS)  # noqa: S101


class SyncFailure(BaseModel):
    item: str = Field(description="its path in the source, or its URL")
    doc_id: str
    reason: str


class SyncResponse(BaseModel):
    sync_id: str
    source_id: str
    trigger: Literal["manual", "schedule"]
    status: Literal["running", "succeeded", "failed"]
    created_at: float
    started_at: float | None
    finished_at: float | None
    seconds: float | None = Field(description="from its start to its end")
    counts: SyncCounts
    failures: list[SyncFailure] = Field(description=f"the first {MAX_FAILURES} failed items, with their reasons")
    error: str | None = Field(description="why a failed sync failed (it deleted nothing)")
    job_ids: list[str] = Field(description="the ingest jobs it staged (GET /jobs/{id})")
    chunks_embedded: int = Field(description="chunks its jobs sent to the embedding model (the rest came from the "
                                             "cache)")

    @classmethod
    def from_row(cls, s: Any, embedded: int) -> "SyncResponse":
        return cls(sync_id=s.id, source_id=s.source_id, trigger=s.trigger, status=s.status, created_at=s.created_at,
                   started_at=s.started_at, finished_at=s.finished_at, seconds=s.seconds,
                   counts=SyncCounts(**{k: s.counts.get(k, 0) for k in COUNTS}),
                   failures=[SyncFailure(**f) for f in s.failures], error=s.error, job_ids=s.job_ids,
                   chunks_embedded=embedded)


class SourceResponse(BaseModel):
    id: str = Field(description="src_...: its documents are `<id>:<path or URL>`")
    tenant: str
    name: str
    kind: Kind
    config: dict[str, Any] = Field(description="as given, without its credentials")
    credentials: list[str] = Field(description="the credential fields that are set (their values are never shown)")
    schedule: str | Every | None
    metadata: dict[str, Any]
    access: dict | None
    state: Literal["new", "syncing", "ok", "failed"] = Field(description=(
        "new: never synced; syncing: a sync is running; ok / failed: how the last one ended"))
    created_at: float
    updated_at: float
    next_sync_at: float | None = Field(description="when the schedule starts the next sync (epoch seconds)")
    running_sync: str | None
    last_sync: SyncResponse | None = Field(description="the last sync that ended")
    counts: SyncCounts | None = Field(description="the last ended sync's counts")
    last_error: str | None = Field(description="the last sync's error when it failed")
    documents: int = Field(description="items the source holds now (its documents)")


class SourceListResponse(BaseModel):
    tenant: str
    sources: list[SourceResponse]


class SyncQueued(BaseModel):
    sync_id: str
    source_id: str
    status: Literal["running"] = "running"


class SyncListResponse(BaseModel):
    source_id: str
    syncs: list[SyncResponse]


class SourceDeletedResponse(BaseModel):
    source_id: str
    deleted: bool = True
    documents: int = Field(description="its documents marked deleted: they leave the next snapshot")
