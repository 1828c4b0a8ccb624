"""POST /ingest (api/routes/ingest.py): the JSON body and its answer."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from wire.common import AccessIn, DocId, Metadata, NonBlank, unique_ids
from wire.ids import MAX_ID_CHARS


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: DocId = Field(description=(
        f"Your id of the document; re-sending it replaces it. 1-{MAX_ID_CHARS} characters, not blank, no control "
        "characters; `/`, `%`, `?`, `#`, spaces and any script are fine (percent-encode them in URLs)"))
    text: NonBlank = Field(min_length=1, description="Plain text or Markdown")
    metadata: Metadata = Field(default_factory=dict,
                               description="Filterable fields; 'title' and 'source' are shown with hits")
    access: AccessIn | None = Field(default=None, description=(
        "who may read it; absent: the whole tenant (or admin keys only where the tenant denies by default)"))


class IngestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    documents: list[DocumentIn] = Field(min_length=1)

    @field_validator("documents")
    @classmethod
    def _unique_ids(cls, docs: list[DocumentIn]) -> list[DocumentIn]:
        return unique_ids(docs, "document ids repeat within one request")


class IngestResponse(BaseModel):
    job_id: str
    status: Literal["queued"] = "queued"
    documents: int

