"""/documents (api/routes/documents.py): what is indexed, a document's text, chunks and access list."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from wire.common import AccessIn


class DeleteDocumentResponse(BaseModel):
    doc_id: str
    deleted: bool
    rebuild: Literal["queued"] = "queued"


class AccessChange(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"access": {"users": ["alice@acme"], "groups": ["hr"]}}, {"access": None}]})

    access: AccessIn | None = Field(description="the new list; null: the whole tenant again")


class AccessResponse(BaseModel):
    doc_id: str
    access: dict[str, list[str]] | None = Field(description="the list as stored (sorted, each name once)")
    rebuild: Literal["queued"] = "queued"


class DocumentSummary(BaseModel):
    doc_id: str
    title: str | None
    source: str | None
    status: str = Field(description="indexed (near-duplicates too, since migration 0007)")
    metadata: dict[str, Any]
    content_hash: str | None = Field(description="SHA-256 of the normalised text: equal for equal content")
    chunks: int
    snapshots: list[str] = Field(description="readable snapshots holding its chunks, the live one first")
    access: dict[str, list[str]] | None = Field(default=None, description=(
        "who may read it (admin keys see it; null: the whole tenant, or not shown to this key)"))


class DocumentListResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"documents": [{
        "doc_id": "handbook", "title": "Employee handbook", "source": "handbook.docx", "status": "indexed",
        "metadata": {"team": "hr"}, "content_hash": "9f2c" + "0" * 60, "chunks": 12, "snapshots": ["ab12" + "0" * 60]}],
        "next_cursor": "aGFuZGJvb2s"}]})

    documents: list[DocumentSummary]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last one")


class DocumentResponse(DocumentSummary):
    text: str | None = Field(description="the stored text: what chunk, hit and passage offsets index into")
    pages: list[list[int]] = Field(default_factory=list, description="[offset, page] where each PDF page starts")


class HitTable(BaseModel):
    number: int = Field(description="which table of the document, 1-based in document order")
    rows: list[int] = Field(description="first and last data row held (1-based, the header row not counted); a "
                                        "chunk of a long table repeats its header row above them")


class DocumentChunk(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "index": 3, "chunk_id": "5d1f" + "0" * 60, "text": "Employees get sixteen weeks of paid parental leave.",
        "start": 5141, "end": 5192, "pages": [2], "headings": ["Employee handbook", "Parental leave"]}]})

    index: int = Field(description="its place among the document's chunks")
    chunk_id: str
    text: str = Field(description="stored text[start:end]")
    start: int | None
    end: int | None
    pages: list[int]
    headings: list[str]
    table: HitTable | None = Field(default=None, description="the table and rows the chunk holds, if a table")


class DocumentChunksResponse(BaseModel):
    doc_id: str
    chunks: list[DocumentChunk]

