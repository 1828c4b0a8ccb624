"""An ingest job: parse -> chunk -> dedup (exact and near) -> embed, document by document.

Every step is idempotent, so a job whose worker died can run again from the top: documents already done
are skipped (their outcome was committed with their catalog change), and chunks already embedded come out
of the embedding cache.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from encoders.dense import CachedEmbedding
from ingest import parsing
from ingest.catalog import Catalog, ChunkRow, DocumentRow
from ingest.chunking import Chunker, ChunkerConfig
from ingest.dedup import NearDuplicateIndex, from_bytes, minhash, to_bytes
from ingest.jobs import JobStore, StagedDocument
from ingest.normalize import bytes_hash, content_hash
from ingest.windows import WindowConfig, embed_chunks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestConfig:
    chunker: ChunkerConfig = ChunkerConfig()
    near_duplicate_threshold: float = 0.9
    minhash_permutations: int = 128
    embed_batch_size: int = 256
    windows: WindowConfig | None = WindowConfig()  # None: snapshots carry no window vectors
    max_document_chars: int = 5_000_000  # chunking and embedding cost grow with it: a longer document fails alone


class Ingestor:
    def __init__(self, catalog: Catalog, jobs: JobStore, embedding: CachedEmbedding, config: IngestConfig) -> None:
        self.catalog = catalog
        self.jobs = jobs
        self.embedding = embedding
        self.config = config
        self.chunker = Chunker(config.chunker)

    def run(self, job_id: str) -> None:
        """Parse and record every pending document, then embed the job's new chunks."""
        tenant = self.jobs.tenant_of(job_id)
        if tenant is None:
            raise KeyError(f"job {job_id} does not exist")
        self.jobs.start(job_id)
        near = self._near_index(tenant)
        for item in self.jobs.pending(job_id):
            self._process(job_id, tenant, item, near)
        self.embed_job(job_id, tenant)

    def _near_index(self, tenant: str) -> NearDuplicateIndex:
        index = NearDuplicateIndex(self.config.near_duplicate_threshold, self.config.minhash_permutations)
        for doc_id, blob in self.catalog.minhashes(tenant):
            index.add(doc_id, from_bytes(blob, self.config.minhash_permutations))
        return index

    def _check_length(self, chars: int) -> None:
        if chars > self.config.max_document_chars:
            raise parsing.ParseError(f"document has {chars} characters; at most {self.config.max_document_chars} "
                                     "(SNAPDEX_MAX_DOCUMENT_CHARS): split it into smaller documents")

    def _process(self, job_id: str, tenant: str, item: StagedDocument, near: NearDuplicateIndex) -> None:
        old = self.catalog.get_document(tenant, item.doc_id)
        raw = bytes_hash(item.payload)
        if old and old.status != "deleted" and old.raw_hash == raw and old.metadata == item.metadata:
            # Same bytes, same metadata: nothing to parse, nothing to embed.
            with self.catalog.db.tx() as conn:
                self.jobs.mark_document(conn, job_id, item.seq, "unchanged", chunks=len(old.chunk_hashes))
            return
        try:
            if item.is_file:
                parsed = parsing.parse_bytes(item.payload, item.filename)
                content = parsed.text
            else:
                # Submitted text is its own content; how a parser renders it must not decide what is a duplicate.
                content = item.payload.decode("utf-8")
                self._check_length(len(content))
                parsed = parsing.parse_text(content, None)
            if not parsed.text.strip():
                raise parsing.ParseError("no text could be extracted")
            self._check_length(len(parsed.text))
        except parsing.ParseError as e:
            with self.catalog.db.tx() as conn:
                self.jobs.mark_document(conn, job_id, item.seq, "failed", reason=str(e))
            return
        except Exception as e:  # a bad document fails alone, never the batch
            log.exception("parsing %s failed", item.doc_id)
            with self.catalog.db.tx() as conn:
                self.jobs.mark_document(conn, job_id, item.seq, "failed", reason=f"{type(e).__name__}: {e}")
            return

        chash = content_hash(content)
        doc = DocumentRow(
            tenant=tenant, doc_id=item.doc_id, status="indexed", content_hash=chash, raw_hash=raw,
            source=item.filename or item.metadata.get("source"), title=item.metadata.get("title") or parsed.title,
            metadata=item.metadata, text=parsed.text, structured=parsed.structured,
            chunker=self.config.chunker.fingerprint(),
        )
        with self.catalog.db.tx() as conn:
            if old and old.status != "deleted" and old.content_hash == chash:
                # New bytes or metadata, same normalised content: keep the chunks, take the new metadata.
                doc.status, doc.chunk_hashes, doc.chunker = old.status, old.chunk_hashes, old.chunker
                doc.duplicate_of, doc.minhash = old.duplicate_of, old.minhash
                self.catalog.put_document(conn, doc)
                outcome = "unchanged" if old.metadata == item.metadata else "updated"
                self.jobs.mark_document(conn, job_id, item.seq, outcome, chunks=len(doc.chunk_hashes))
                return
            twin = self.catalog.find_by_content(tenant, chash, exclude=item.doc_id, conn=conn)
            if twin is not None:
                # Exact duplicate: the same chunks, now listing this document as one more source.
                doc.chunk_hashes, doc.minhash, doc.chunker = twin.chunk_hashes, twin.minhash, twin.chunker
                self.catalog.put_document(conn, doc)
                self.jobs.mark_document(conn, job_id, item.seq, "duplicate", chunks=len(doc.chunk_hashes))
                return
            sig = minhash(parsed.text, self.config.minhash_permutations)
            similar = near.find(sig, exclude=item.doc_id)
            if similar is not None:
                doc.status, doc.duplicate_of, doc.minhash = "near_duplicate", similar, to_bytes(sig)
                self.catalog.put_document(conn, doc)
                near.remove(item.doc_id)
                self.jobs.mark_document(conn, job_id, item.seq, "near_duplicate",
                                        reason=f"near-duplicate of {similar}")
                return
            chunks = self.chunker.chunk_hashes(parsed.text, parsed.structured)
            self.catalog.put_chunks(conn, tenant, [ChunkRow.of(h, t) for h, t in chunks.items()])
            doc.chunk_hashes, doc.minhash = list(chunks), to_bytes(sig)
            self.catalog.put_document(conn, doc)
            outcome = "updated" if old and old.status != "deleted" else "new"
            self.jobs.mark_document(conn, job_id, item.seq, outcome, chunks=len(chunks))
        near.add(item.doc_id, sig)

    def embed_job(self, job_id: str, tenant: str) -> None:
        titles = self.jobs.chunk_titles(job_id)
        hashes = list(titles)
        self.jobs.set_phase(job_id, "embedding", chunks_total=len(hashes), chunks_done=0,
                            chunks_embedded=0, chunks_reused=0)
        step = self.config.embed_batch_size
        for i in range(0, len(hashes), step):
            part = hashes[i : i + step]
            rows = self.catalog.chunks(tenant, part)
            # Window vectors too: the snapshot build reads them from the cache, so builds stay short and the cost
            # lands where progress is reported.
            embedded = embed_chunks(self.embedding, {h: (rows[h].text, titles[h]) for h in part},
                                    self.config.windows, batch_size=step).embedded
            self.jobs.add_embedded(job_id, len(part), embedded)
