"""An ingest job: parse -> chunk -> dedup (exact and near) -> embed, document by document.

Every `embed_batch_size` new chunks go to one embedding thread, and this thread parses, chunks and deduplicates
the next documents meanwhile, but only while the model is not running (`_Turns`): between its calls, while that
thread pools, plans windows and writes the cache, or when it waits for chunks. At most one batch waits behind the
one being embedded, so parsing never runs far ahead of the model.

Every step is idempotent, so a job whose worker died can run again from the top: documents already done
are skipped (their outcome was committed with their catalog change), and chunks already embedded come out
of the embedding cache.

Documents are parsed in child processes under a time and a memory limit (`ingest/parse_process.py`). A document
past a limit fails alone, and its job then gives the worker up (`Yielded`) when documents are left: it is queued
again behind the jobs already waiting, so one tenant's hostile files hold the others' ingestion for at most one
document's limit at a time. A document whose parse was started MAX_PARSE_STARTS times without finishing (the
process was killed while parsing it, or died of it) fails with that reason rather than being parsed again.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from contextlib import contextmanager
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

from encoders.embedding import EmbeddingService, Gate
from ingest import formats
from ingest.catalog import Catalog, ChunkRow, DocumentRow, unique_chunks, unique_hashes
from ingest.chunking import Chunker, ChunkerConfig, relocate
from ingest.dedup import NearDuplicateIndex, from_bytes, minhash, to_bytes
from ingest.ids import attachment_ids, clean_name
from ingest.jobs import JobStore, NewDocument, StagedDocument
from ingest.language import document_language
from ingest.normalize import bytes_hash, content_hash
from ingest.parse_process import ParseLimitExceeded, ParseLimits, ParserFailed, ParserPool
from ingest.windows import WindowConfig, embed_chunks

log = logging.getLogger(__name__)

# Starts of one document's parse that may end without an outcome before it fails: once may be a restart that had
# nothing to do with it (a deploy), twice in the same document is not.
MAX_PARSE_STARTS = 2


class Yielded(Exception):
    """A document of the job passed a parse limit and documents are left: the job gives its worker up, to be
    queued again (unsettled) behind the jobs already waiting."""


@dataclass(frozen=True)
class IngestConfig:
    chunker: ChunkerConfig = ChunkerConfig()
    near_duplicate_threshold: float = 0.9
    minhash_permutations: int = 128
    embed_batch_size: int = 256
    windows: WindowConfig | None = WindowConfig()  # None: snapshots carry no window vectors
    max_document_chars: int = 5_000_000  # chunking and embedding cost grow with it: a longer document fails alone
    # A job's first batches are smaller (this many chunks, then twice as many each time up to embed_batch_size):
    # the model starts as soon as the first documents are chunked instead of idling while a whole batch is parsed.
    first_embed_batch: int = 32
    parse: ParseLimits = ParseLimits()  # SNAPDEX_PARSE_TIMEOUT_S, SNAPDEX_PARSE_MEMORY_MB, SNAPDEX_OCR_LANGUAGES


class Ingestor:
    def __init__(self, catalog: Catalog, jobs: JobStore, embedding: EmbeddingService, config: IngestConfig) -> None:
        self.catalog = catalog
        self.jobs = jobs
        self.embedding = embedding
        self.config = config
        self.chunker = Chunker(config.chunker)
        self.parser = ParserPool(config.parse)

    def close(self) -> None:
        self.parser.close()

    def run(self, job_id: str, interrupts: tuple[type[BaseException], ...] = ()) -> None:
        """Parse and record every pending document; its new chunks are embedded meanwhile, batch by batch.
        `interrupts` (Celery's soft time limit) end the run wherever they land: they are not a document's failure."""
        tenant = self.jobs.tenant_of(job_id)
        if tenant is None:
            raise KeyError(f"job {job_id} does not exist")
        self.jobs.start(job_id)
        self.jobs.set_phase(job_id, "parsing", chunks_total=0, chunks_done=0, chunks_embedded=0, chunks_reused=0)
        near = self._near_index(tenant)
        with ThreadPoolExecutor(1, thread_name_prefix="embed") as pool:
            feed = _EmbedFeed(self, job_id, tenant, pool)
            # Documents an earlier attempt of this job recorded: their chunks may not all have been embedded.
            for h, title in self.jobs.chunk_titles(job_id).items():
                feed.add([h], title)
            limited = False
            for item in self.jobs.pending(job_id):
                if limited:
                    # The batches handed over finish first (leaving the `with`); the chunks not handed over are
                    # the job's next run's (chunk_titles above finds them).
                    raise Yielded(f"job {job_id}: a document passed a parse limit; the rest waits its turn")
                try:
                    with feed.turns.parsing():
                        new = self._process(job_id, tenant, item, near, interrupts)
                except ParseLimitExceeded:
                    limited = True
                    continue
                if new is not None:
                    feed.add(*new)
            feed.close()

    def embed_batch(self, job_id: str, tenant: str, titles: dict[str, str | None], gate: Gate | None = None) -> None:
        """Embed chunks (hash -> title of their first document) and count them on the job."""
        rows = self.catalog.chunks(tenant, list(titles))
        # Window vectors too: the snapshot build reads them from the cache, so builds stay short and the cost
        # lands where progress is reported.
        embedded = embed_chunks(self.embedding, {h: (rows[h].text, t) for h, t in titles.items()},
                                self.config.windows, batch_size=self.config.embed_batch_size, gate=gate).embedded
        self.jobs.add_embedded(job_id, len(titles), embedded)

    def _near_index(self, tenant: str) -> NearDuplicateIndex:
        index = NearDuplicateIndex(self.config.near_duplicate_threshold, self.config.minhash_permutations)
        for doc_id, blob in self.catalog.minhashes(tenant):
            index.add(doc_id, from_bytes(blob, self.config.minhash_permutations))
        return index

    def _check_length(self, chars: int) -> None:
        if chars > self.config.max_document_chars:
            raise formats.ParseError(f"document has {chars} characters; at most {self.config.max_document_chars} "
                                     "(SNAPDEX_MAX_DOCUMENT_CHARS): split it into smaller documents")

    def _process(self, job_id: str, tenant: str, item: StagedDocument, near: NearDuplicateIndex,
                 interrupts: tuple[type[BaseException], ...] = ()) -> tuple[list[str], str | None] | None:
        """Parse, dedup and record one document. Returns the chunks it points at and its title when they are to
        be embedded (or found in the cache): a new or changed document's."""
        old = self.catalog.get_document(tenant, item.doc_id)
        raw = bytes_hash(item.payload)
        same_labels = old is not None and old.metadata == item.metadata and old.access == item.access
        if old and old.status != "deleted" and old.raw_hash == raw and same_labels:
            # Same bytes, same metadata and access list: nothing to parse, nothing to embed.
            with self.catalog.db.tx() as conn:
                self.jobs.mark_document(conn, job_id, item.seq, "unchanged", chunks=len(old.chunk_hashes))
            return
        if item.parse_starts >= MAX_PARSE_STARTS:
            return self._fail(job_id, item, f"parsing was cut short {item.parse_starts} times (the service stopped "
                                            "while parsing it)")
        try:
            parsed, content = self._parse(job_id, item)
        except formats.ParseError as e:
            if isinstance(e, ParserFailed):
                log.error("parsing %s failed:\n%s", item.doc_id, e.child_traceback)
            self._fail(job_id, item, str(e))
            if isinstance(e, ParseLimitExceeded):
                raise
            return
        try:
            if not parsed.text.strip():
                raise formats.ParseError("no text could be extracted")
            # Tables longer than a chunk become parts that each repeat the header row: the stored text holds them.
            text, pages = self.chunker.split_tables(parsed.text, parsed.pages)
            if text is not parsed.text:
                parsed = replace(parsed, text=text, pages=pages)
                content = text if item.is_file else content
            self._check_length(len(parsed.text))
            try:
                language = document_language(parsed.text, item.metadata)
            except ValueError as e:
                raise formats.ParseError(f"metadata: {e}") from e
        except formats.ParseError as e:
            return self._fail(job_id, item, str(e))
        except Exception as e:  # a bad document fails alone, never the batch
            if isinstance(e, interrupts):  # the task's time is up (seen on a loaded machine): the job is requeued
                raise
            log.exception("parsing %s failed", item.doc_id)
            return self._fail(job_id, item, f"{type(e).__name__}: {e}")

        chash = content_hash(content)
        doc = DocumentRow(
            tenant=tenant, doc_id=item.doc_id, status="indexed", content_hash=chash, raw_hash=raw,
            source=item.filename or item.metadata.get("source"), title=item.metadata.get("title") or parsed.title,
            metadata=item.metadata, text=parsed.text, structured=parsed.structured,
            chunker=self.config.chunker.fingerprint(), page_starts=[list(p) for p in parsed.pages] or None,
            extracted={**dict(parsed.metadata), "language": language},
            access=item.access,
        )
        with self.catalog.db.tx() as conn:
            if old and old.status != "deleted" and old.content_hash == chash:
                # New bytes or metadata, same normalised content: keep the chunks, take the new metadata.
                doc.status, doc.chunk_hashes, doc.chunker = old.status, old.chunk_hashes, old.chunker
                doc.chunk_spans = _carry_spans(old, doc)
                doc.duplicate_of, doc.minhash = old.duplicate_of, old.minhash
                self.catalog.put_document(conn, doc)
                outcome = "unchanged" if same_labels else "updated"
                self.jobs.mark_document(conn, job_id, item.seq, outcome, chunks=len(doc.chunk_hashes))
                return (doc.chunk_hashes, doc.title) if outcome == "updated" else None
            twin = self.catalog.find_by_content(tenant, chash, exclude=item.doc_id, conn=conn)
            if twin is not None:
                # Exact duplicate: the same chunks, now listing this document as one more source.
                doc.chunk_hashes, doc.minhash, doc.chunker = twin.chunk_hashes, twin.minhash, twin.chunker
                doc.chunk_spans = _carry_spans(twin, doc)
                self.catalog.put_document(conn, doc)
                self.jobs.mark_document(conn, job_id, item.seq, "duplicate", chunks=len(doc.chunk_hashes))
                return
            sig = minhash(parsed.text, self.config.minhash_permutations)
            # A near-duplicate (a policy's v2 under a new id) is indexed like any document, its twin recorded: no
            # document sent is left unsearchable. Retrieval collapses twins' hits (SNAPDEX_NEAR_DUPLICATE_POLICY).
            similar = near.find(sig, exclude=item.doc_id)
            doc.duplicate_of = similar
            chunks = self.chunker.chunks(parsed.text, parsed.structured, parsed.pages)
            self.catalog.put_chunks(conn, tenant, [ChunkRow.of(c.hash, c.text, language)
                                                   for c in unique_chunks(chunks)])
            doc.chunk_hashes, doc.minhash = unique_hashes(chunks), to_bytes(sig)
            doc.chunk_spans = [c.layout() for c in chunks]
            self.catalog.put_document(conn, doc)
            if similar is not None:
                outcome, reason = "near_duplicate", f"near-duplicate of {similar}: indexed as its twin"
            else:
                outcome, reason = ("updated" if old and old.status != "deleted" else "new"), None
            self.jobs.mark_document(conn, job_id, item.seq, outcome, reason=reason, chunks=len(doc.chunk_hashes))
            self._stage_attachments(conn, job_id, item, parsed)
        near.add(item.doc_id, sig)
        return doc.chunk_hashes, doc.title

    def _fail(self, job_id: str, item: StagedDocument, reason: str) -> None:
        with self.catalog.db.tx() as conn:
            self.jobs.mark_document(conn, job_id, item.seq, "failed", reason=reason)

    def _parse(self, job_id: str, item: StagedDocument) -> tuple[formats.ParsedDocument, str]:
        """The parsed document and its content (what decides a duplicate), parsed in a child process. Raises
        ParseError (ParseLimitExceeded past a limit); anything else that ends the wait (this thread interrupted)
        is not the document's failure and is raised as it is.

        The parse's start is counted (committed) once it has run for parse_process.POLL_S (20 ms), while the child
        works: a quicker parse cannot be what stopped the process (it runs contained), and a transaction for every
        document cost 0.1 ms each, as much again as the child's round trip."""
        started = lambda: self.jobs.parse_started(job_id, item.seq)  # noqa: E731
        if item.is_file:
            parsed = self.parser.parse_bytes(item.payload, item.filename, slow=started)
            return parsed, parsed.text
        try:
            # Submitted text is its own content; how a parser renders it must not decide what is a duplicate.
            content = item.payload.decode("utf-8")
        except UnicodeDecodeError as e:
            raise formats.ParseError(f"{type(e).__name__}: {e}") from e
        self._check_length(len(content))
        return self.parser.parse_text(item.payload, slow=started), content

    def _stage_attachments(self, conn, job_id: str, item: StagedDocument, parsed: formats.ParsedDocument) -> None:
        """A mail's attachments join its job as documents of their own (`<mail id>/<file name>`, the mail's metadata
        plus `attachment_of`), in the transaction that records the mail: a job run again finds them staged once."""
        if not parsed.attachments:
            return
        # A sender names attachments: their names are cleaned into valid ids (no control character, no lone
        # surrogate, at most MAX_ID_CHARS; ingest/ids.py), as the API requires of every id it takes.
        ids = attachment_ids(item.doc_id, [name for name, _ in parsed.attachments])
        staged = [NewDocument(doc_id, payload, {**item.metadata, "attachment_of": item.doc_id},
                              clean_name(name, f"attachment-{i}"))
                  for i, (doc_id, (name, payload)) in enumerate(zip(ids, parsed.attachments), 1)]
        self.jobs.append(conn, job_id, staged)


def _carry_spans(src: DocumentRow, doc: DocumentRow) -> list[list] | None:
    """The chunk spans of `src` for `doc`, which takes its chunks: the same normalised content, maybe with other
    white space in its stored text (then each chunk is found again in it)."""
    if src.chunk_spans is None or src.text is None or doc.text is None:
        return None
    if src.text == doc.text and src.page_starts == doc.page_starts:
        return src.chunk_spans
    return [c.layout() for c in relocate(src.spans(), src.text, doc.text, doc.page_starts)]


class _EmbedFeed:
    """New chunks of a job, handed to the embedding thread `embed_batch_size` at a time, after a ramp from
    `first_embed_batch` (the first title wins for a chunk two documents share, as the catalog's order gives it).
    One batch is embedded and at most one more waits; handing over a third waits for the first, so a failure in
    the embedding thread stops the parsing too."""

    DEPTH = 1  # batches waiting behind the one being embedded

    def __init__(self, ingestor: Ingestor, job_id: str, tenant: str, pool: ThreadPoolExecutor) -> None:
        self.ingestor, self.job_id, self.tenant, self.pool = ingestor, job_id, tenant, pool
        self.seen: set[str] = set()
        self.buffer: dict[str, str | None] = {}
        self.futures: deque[Future] = deque()
        self.total = 0
        self.size = min(ingestor.config.first_embed_batch, ingestor.config.embed_batch_size)
        self.turns = _Turns()

    def add(self, hashes: list[str], title: str | None) -> None:
        for h in hashes:
            if h not in self.seen:
                self.seen.add(h)
                self.buffer[h] = title
        while len(self.buffer) >= self.size:
            self._hand_over()

    def _hand_over(self) -> None:
        # Exactly `size` chunks (the rest waits for the next batch): the model is called with whole batches.
        items = list(self.buffer.items())
        batch, self.buffer = dict(items[: self.size]), dict(items[self.size :])
        self.size = min(2 * self.size, self.ingestor.config.embed_batch_size)
        self.total += len(batch)
        self.ingestor.jobs.set_phase(self.job_id, "embedding", chunks_total=self.total)
        self.futures.append(self.pool.submit(self.ingestor.embed_batch, self.job_id, self.tenant, batch,
                                             self.turns.model))
        while len(self.futures) > 1 + self.DEPTH:
            self.futures.popleft().result()

    def close(self) -> None:
        """Hand over the rest and wait for every batch; an embedding error is raised here."""
        while self.buffer:
            self._hand_over()
        while self.futures:
            self.futures.popleft().result()


class _Turns:
    """Parsing and the model take turns on the CPU; the model goes first.

    The model runs on every core (ONNX Runtime's intra-op threads). Parsing beside it preempted one of those
    threads, and the others waited for it at the end of each operator: measured on SciFact (int8, 5,183 abstracts),
    the model took 107-113 s with parsing beside it against 95-96 s without, and the whole ingest took longer than
    with no overlap at all. So parsing runs a document at a time while the model is not running (between its calls,
    while the embedding thread pools, plans windows and writes the cache, or while it waits for chunks), and a call
    of the model waits only for the document being parsed."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._model_wants = 0   # calls of the model waiting for their turn, or running
        self._parsing = False

    @contextmanager
    def model(self):
        with self._cond:
            self._model_wants += 1
            self._cond.wait_for(lambda: not self._parsing)
        try:
            yield
        finally:
            with self._cond:
                self._model_wants -= 1
                self._cond.notify_all()

    @contextmanager
    def parsing(self):
        with self._cond:
            self._cond.wait_for(lambda: not self._model_wants)
            self._parsing = True
        try:
            yield
        finally:
            with self._cond:
                self._parsing = False
                self._cond.notify_all()
