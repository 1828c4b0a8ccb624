"""Every table of the catalog, in one MetaData: what the stores read and write, what Alembic compares the
migrations against (`tests/db/test_migrations.py` fails when the two drift apart).

Types are chosen so that SQLite keeps the exact column types the releases before migrations wrote (TEXT,
INTEGER, REAL, BLOB) while PostgreSQL gets its own: DOUBLE PRECISION for epoch seconds, BYTEA, BOOLEAN flags.
Times are epoch seconds (float) throughout, as the API reports them. JSON values are stored as TEXT in both
databases, serialised by the store that owns the column (metadata with sorted keys, so equal dicts compare equal).

A change here needs a migration in `db/migrations/versions/` (a new file whose down_revision is the newest): until
the two agree, tests/db/test_migrations.py fails on both databases and prints what differs.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import sqlite

metadata = MetaData()

# Epoch seconds: REAL in SQLite (as before migrations), DOUBLE PRECISION in PostgreSQL (REAL there is 4 bytes:
# a timestamp would lose its minutes).
Epoch = Double().with_variant(sqlite.REAL(), "sqlite")
# A flag: 0/1 INTEGER in SQLite (as before migrations), BOOLEAN in PostgreSQL.
Flag = Boolean().with_variant(Integer(), "sqlite")

# --- the catalog: documents and their chunks (ingest/catalog.py) ------------------------------------------------

documents = Table(
    "documents", metadata,
    Column("tenant", Text, nullable=False),
    Column("doc_id", Text, nullable=False),
    # indexed | deleted (near_duplicate before migration 0007: near-duplicates are indexed, `duplicate_of` their twin)
    Column("status", Text, nullable=False),
    Column("content_hash", Text),
    Column("raw_hash", Text),
    Column("source", Text),
    Column("title", Text),
    Column("metadata", Text, nullable=False, server_default="{}"),  # JSON object
    Column("chunk_hashes", Text, nullable=False, server_default="[]"),  # JSON list
    Column("duplicate_of", Text),
    Column("minhash", LargeBinary),
    Column("text", Text),  # the extracted text: a new chunker re-chunks it without the original file
    Column("structured", Flag, nullable=False, server_default="0"),  # the text carries headings to split on
    Column("chunker", Text),  # fingerprint of the chunker config that made chunk_hashes
    # JSON [[chunk hash, start, end, [heading path], [pages]], ...]: every chunk in document order (repeats
    # included) as a span of `text`; null for documents not chunked since offsets were recorded (migration 0004).
    Column("chunk_spans", Text),
    Column("page_starts", Text),  # JSON [[offset in text, page], ...] where each page starts (PDFs); null otherwise
    # JSON object: what the file said about itself (mail subject/from/to/date, sheets, slides, attachment_of) and
    # "language", the one its BM25 terms are analysed in (migration 0007); null for documents ingested before.
    Column("extracted_metadata", Text),
    # 0006: JSON {"users": [...], "groups": [...]}; null: no list, the whole tenant reads it (ingest/access.py).
    Column("access", Text),
    Column("updated_at", Epoch, nullable=False),
    PrimaryKeyConstraint("tenant", "doc_id"),
    # doc_id in the index too: the exact-duplicate lookup orders by it (without it SQLite walked the primary key
    # over every document of the tenant: one full scan per ingested document, 29 % of SciFact's ingest).
    Index("documents_by_content", "tenant", "content_hash", "doc_id"),
)

chunks = Table(
    "chunks", metadata,
    Column("tenant", Text, nullable=False),
    Column("chunk_hash", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("terms", Text, nullable=False),  # JSON {stemmed term: count}: BM25 weights are computed per snapshot
    PrimaryKeyConstraint("tenant", "chunk_hash"),
)

# --- ingest jobs (ingest/jobs.py; phases in ingest/phases.py) ---------------------------------------------------

jobs = Table(
    "jobs", metadata,
    Column("id", Text, primary_key=True),
    Column("tenant", Text, nullable=False),
    Column("status", Text, nullable=False),  # JobStatus
    Column("phase", Text),  # JobPhase
    Column("created_at", Epoch, nullable=False),
    Column("started_at", Epoch),
    Column("finished_at", Epoch),
    Column("docs_total", Integer, nullable=False),
    Column("chunks_total", Integer, nullable=False, server_default="0"),
    Column("chunks_done", Integer, nullable=False, server_default="0"),
    Column("chunks_embedded", Integer, nullable=False, server_default="0"),
    Column("chunks_reused", Integer, nullable=False, server_default="0"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("snapshot", Text),
    Column("error", Text),
    # 0002: who is ingesting the job now, until when (a lease its holder renews; a dead holder's claim runs out).
    Column("claimed_by", Text),
    Column("claim_expires_at", Epoch),
    # 0009: when a job that gave its worker up (a parse limit) was queued again; null for one queued once.
    Column("queued_at", Epoch),
    Index("jobs_tenant", "tenant", "created_at"),
    Index("jobs_by_status", "status", "created_at"),  # 0002: unsettled jobs, on every start
)

job_documents = Table(
    "job_documents", metadata,
    Column("job_id", Text, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("doc_id", Text, nullable=False),
    Column("filename", Text),  # set for uploaded files, NULL for JSON text
    Column("payload", LargeBinary),  # the staged bytes or UTF-8 text; cleared once the job settles
    Column("metadata", Text, nullable=False, server_default="{}"),
    Column("access", Text),  # 0006: the document's access list as sent (JSON), null for none
    Column("done", Flag, nullable=False, server_default="0"),
    Column("outcome", Text),  # new | updated | unchanged | duplicate | near_duplicate | failed
    Column("reason", Text),
    Column("chunks", Integer, nullable=False, server_default="0"),
    # 0009: times its parse was started (counted once it has run 20 ms); a parse that never finished (the process
    # died in it) is not retried for ever (ingest.pipeline.MAX_PARSE_STARTS).
    Column("parse_starts", Integer, nullable=False, server_default="0"),
    PrimaryKeyConstraint("job_id", "seq"),
)

# --- the snapshot manifest (index_snapshots/manifest.py) --------------------------------------------------------

snapshots = Table(
    "snapshots", metadata,
    Column("tenant", Text, nullable=False),
    Column("hash", Text, nullable=False),
    Column("collection", Text, nullable=False),
    Column("status", Text, nullable=False),  # building | candidate | live | retired | failed | deleted
    Column("parent", Text),
    Column("created_at", Epoch, nullable=False),
    Column("built_at", Epoch),
    Column("documents", Integer, nullable=False, server_default="0"),
    Column("chunks", Integer, nullable=False, server_default="0"),
    Column("embedded", Integer, nullable=False, server_default="0"),
    Column("reused", Integer, nullable=False, server_default="0"),
    Column("build_seconds", Epoch),
    Column("config", Text, nullable=False),  # JSON: the canonical index config
    Column("reason", Text),
    Column("last_read_at", Epoch),  # last pinned read: retention spares a snapshot somebody is reading
    # 0008: moved by every access-list change written into the snapshot's payloads; part of each result-cache key
    Column("access_rev", Integer, nullable=False, server_default="0"),
    PrimaryKeyConstraint("tenant", "hash"),
)

live = Table(
    "live", metadata,
    Column("tenant", Text, primary_key=True),
    Column("hash", Text, nullable=False),
    Column("previous", Text),
    Column("switched_at", Epoch, nullable=False),
)

switches = Table(
    "switches", metadata,
    Column("tenant", Text, nullable=False),
    Column("at", Epoch, nullable=False),
    Column("from_hash", Text),
    Column("to_hash", Text, nullable=False),
    Column("action", Text, nullable=False),  # promote | rollback | manual | override | rollout
)

# --- evaluation (eval/store.py) ----------------------------------------------------------------------------------

query_sets = Table(
    "query_sets", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("checksum", Text, nullable=False),
    Column("description", Text),
    Column("queries", Integer, nullable=False),
    Column("created_at", Epoch, nullable=False),
    Column("retired_at", Epoch),  # no longer run after builds; its history stays
    # 0006: JSON {"user": ..., "groups": [...]}: the set is run as this principal sees the index; null: unrestricted.
    Column("principal", Text),
    UniqueConstraint("tenant", "name", "version"),
    sqlite_autoincrement=True,
)

query_set_items = Table(
    "query_set_items", metadata,
    Column("set_id", Integer, ForeignKey("query_sets.id"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("qid", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("relevant", Text, nullable=False),  # JSON {doc_id: grade}
    PrimaryKeyConstraint("set_id", "qid"),
)

eval_runs = Table(
    "eval_runs", metadata,
    Column("id", Text, primary_key=True),
    Column("tenant", Text, nullable=False),
    Column("snapshot", Text, nullable=False),
    Column("set_id", Integer, ForeignKey("query_sets.id"), nullable=False),
    Column("recipe_key", Text, nullable=False),
    Column("recipe", Text, nullable=False),  # JSON
    Column("trigger", Text, nullable=False),  # build | upload | manual | baseline | profile
    Column("status", Text, nullable=False),  # running | done | failed
    Column("created_at", Epoch, nullable=False),
    Column("finished_at", Epoch),
    Column("seconds", Epoch),
    Column("queries", Integer),
    Column("metrics", Text),  # JSON
    Column("latency_ms", Text),  # JSON
    Column("error", Text),
    Index("eval_runs_by_snapshot", "tenant", "snapshot", "set_id"),
)

eval_results = Table(
    "eval_results", metadata,
    Column("run_id", Text, ForeignKey("eval_runs.id"), nullable=False),
    Column("qid", Text, nullable=False),
    Column("metrics", Text, nullable=False),  # JSON
    Column("ranks", Text, nullable=False),  # JSON {relevant doc id: 1-based rank or null}
    Column("retrieved", Text, nullable=False),  # JSON [doc id, ...], the top RETRIEVED_KEPT
    # 0002: the order the run scored its queries in (SQLite's rowid kept it before; PostgreSQL has none).
    Column("position", Integer),
    PrimaryKeyConstraint("run_id", "qid"),
)

gate_verdicts = Table(
    "gate_verdicts", metadata,
    Column("tenant", Text, nullable=False),
    Column("snapshot", Text, nullable=False),
    Column("decided_at", Epoch, nullable=False),
    Column("passed", Flag, nullable=False),
    Column("baseline", Text),  # the live snapshot it was compared with
    Column("reasons", Text, nullable=False),  # JSON
    Column("checks", Text, nullable=False),  # JSON
    Column("runs", Text, nullable=False),  # JSON
    Column("override_at", Epoch),  # an operator promoted it although it failed
    PrimaryKeyConstraint("tenant", "snapshot"),
)

benchmarks = Table(
    "benchmarks", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),  # which benchmark, e.g. peers
    Column("created_at", Epoch, nullable=False),  # imported at
    Column("run_date", Text, nullable=False),  # the run's date as the benchmark wrote it (ISO 8601)
    Column("run_at", Epoch, nullable=False),  # the same instant in epoch seconds: orders runs, identifies a re-import
    Column("git_commit", Text, nullable=False),
    Column("machine", Text),
    Column("body", Text, nullable=False),  # the whole JSON the benchmark wrote
    UniqueConstraint("name", "run_at", "git_commit"),
    sqlite_autoincrement=True,
)
Index("benchmarks_by_date", benchmarks.c.run_at.desc())

# --- retrieval profiles and tuning runs (eval/profiles.py), 0003 ---------------------------------------------------

retrieval_profiles = Table(
    "retrieval_profiles", metadata,
    Column("tenant", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("params", Text, nullable=False),  # JSON {stage parameter: value}
    Column("status", Text, nullable=False),  # live | retired | rejected
    Column("scores", Text, nullable=False),  # JSON: cross-validated scores of it, of the live profile, of the default
    Column("reason", Text),  # why it was adopted, or not
    Column("tuning_id", Text),
    Column("created_at", Epoch, nullable=False),
    PrimaryKeyConstraint("tenant", "version"),
)

profile_live = Table(
    "profile_live", metadata,
    Column("tenant", Text, primary_key=True),
    Column("version", Integer, nullable=False),  # 0: the global default
    Column("previous", Integer),
    Column("switched_at", Epoch, nullable=False),
)

profile_switches = Table(
    "profile_switches", metadata,
    Column("tenant", Text, nullable=False),
    Column("at", Epoch, nullable=False),
    Column("from_version", Integer),
    Column("to_version", Integer, nullable=False),
    Column("action", Text, nullable=False),  # adopt | rollback | manual
    Index("profile_switches_by_tenant", "tenant", "at"),
)

tuning_runs = Table(
    "tuning_runs", metadata,
    Column("id", Text, primary_key=True),
    Column("tenant", Text, nullable=False),
    Column("trigger", Text, nullable=False),  # request | build
    Column("status", Text, nullable=False),  # queued | running | done | failed
    Column("request", Text, nullable=False),  # JSON: query sets, folds, metric, seed, level
    Column("progress", Text, nullable=False, server_default="{}"),  # JSON
    Column("result", Text),  # JSON: the chosen parameters, the scores, the test and the decision
    Column("profile_version", Integer),  # the version it recorded, if any
    Column("error", Text),
    Column("created_at", Epoch, nullable=False),
    Column("started_at", Epoch),
    Column("finished_at", Epoch),
    Index("tuning_runs_by_tenant", "tenant", "created_at"),
)

# --- webhooks: outgoing events (notify/), 0005 ---------------------------------------------------------------------

webhooks = Table(
    "webhooks", metadata,
    Column("id", Text, primary_key=True),  # wh_...: public, in listings and delivery logs
    Column("tenant", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("events", Text, nullable=False),  # JSON list of event types it receives
    Column("description", Text, nullable=False, server_default=""),
    # The signing secret, encrypted (Fernet) under a key derived from SNAPDEX_WEBHOOK_SECRET_KEY: the service must
    # sign with it, so a hash would not do; a copy of the catalog alone does not reveal it (notify/secrets.py).
    Column("secret", LargeBinary, nullable=False),
    Column("created_at", Epoch, nullable=False),
    Index("webhooks_by_tenant", "tenant", "created_at"),
)

# The outbox: written in the same transaction as the state change it reports, delivered afterwards.
events = Table(
    "events", metadata,
    Column("id", Text, primary_key=True),  # evt_...: the idempotency id a receiver dedupes on
    Column("tenant", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("created_at", Epoch, nullable=False),
    Column("body", Text, nullable=False),  # the exact JSON sent: a retry re-sends the same bytes
    # What makes a repeated emit the same event (a redelivered task, a restart that finds the same config drift).
    Column("dedupe_key", Text),
    UniqueConstraint("tenant", "type", "dedupe_key"),
    Index("events_by_tenant", "tenant", "created_at"),
)

deliveries = Table(
    "deliveries", metadata,
    Column("id", Text, primary_key=True),  # dlv_...
    Column("webhook_id", Text, ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", Text, ForeignKey("events.id"), nullable=False),
    Column("status", Text, nullable=False),  # pending | delivered | dead
    Column("attempts", Integer, nullable=False, server_default="0"),
    # When the next attempt is due; NULL once delivered or dead. The sweeper pushes it forward by a lease when it
    # enqueues the attempt, so one attempt is in flight at a time.
    Column("next_attempt_at", Epoch),
    Column("created_at", Epoch, nullable=False),
    Column("delivered_at", Epoch),
    Column("status_code", Integer),  # of the last attempt
    Column("latency_ms", Epoch),
    Column("error", Text),
    Index("deliveries_due", "status", "next_attempt_at"),
    Index("deliveries_by_webhook", "webhook_id", "created_at"),
)

delivery_attempts = Table(
    "delivery_attempts", metadata,
    Column("delivery_id", Text, ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", Epoch, nullable=False),
    Column("status_code", Integer),  # NULL: no answer (refused, timed out)
    Column("latency_ms", Epoch, nullable=False),
    Column("error", Text),
    PrimaryKeyConstraint("delivery_id", "attempt"),
)

# --- usage reports: which parts of an answer the answer written from it used (eval/usage.py), 0010 ---------------

usage_reports = Table(
    "usage_reports", metadata,
    Column("tenant", Text, nullable=False),
    Column("request_id", Text, nullable=False),  # of the /retrieve answer reported on
    # JSON [key id, user, [groups]]: who the answer was for, and so who alone may report on it.
    Column("reporter", Text, nullable=False),
    Column("snapshot", Text, nullable=False),  # that answered
    Column("cited", Text, nullable=False),  # JSON [{"ref", "citation", "doc_id", "chunk_ids"}], as reported
    Column("helpful", Flag),  # NULL: not said
    Column("answered_at", Epoch, nullable=False),
    Column("reported_at", Epoch, nullable=False),
    PrimaryKeyConstraint("tenant", "request_id", "reporter"),  # one report per answer and reporter: a new one replaces
    Index("usage_reports_by_tenant", "tenant", "reported_at"),
)

# --- answers and their feedback (eval/answers.py, eval/feedback.py), 0012 ------------------------------------------

answers = Table(
    "answers", metadata,
    Column("tenant", Text, nullable=False),
    Column("request_id", Text, nullable=False),  # of the /retrieve answer
    Column("reporter", Text, nullable=False),  # JSON [key id, user, [groups]]: who it was for, who alone reports on it
    Column("snapshot", Text, nullable=False),  # that answered
    # JSON eval.answers.Shown: the hits in rank order (chunk id, doc ids), the context passages, and each hit's arm
    # (null until a rollout answers), so a signal on a hit is credited to its position and arm.
    Column("shown", Text, nullable=False),
    Column("rollout", Text),  # the rollout that answered; NULL: none
    Column("query", Text),  # the query; NULL when SNAPDEX_FEEDBACK_KEEP_QUERIES is false, or for a batch
    Column("answered_at", Epoch, nullable=False),
    PrimaryKeyConstraint("tenant", "request_id", "reporter"),
    Index("answers_by_time", "answered_at"),
)

feedback = Table(
    "feedback", metadata,
    Column("tenant", Text, nullable=False),
    Column("request_id", Text, nullable=False),
    Column("reporter", Text, nullable=False),  # as answers.reporter
    # What the signal is about: "chunk:<id>", "doc:<id>", or "answer" (the answer as a whole: helpful or not).
    Column("target", Text, nullable=False),
    Column("signal", Text, nullable=False),  # cited | clicked | helpful | not_helpful
    Column("via", Text, nullable=False),  # feedback (POST /feedback) | usage (POST /usage, MCP report_usage)
    Column("chunk_id", Text),
    Column("doc_id", Text),  # the document credited (a chunk's first); deleting it deletes the row
    Column("position", Integer),  # 1-based rank of the hit in the answer (a document: its first hit's)
    Column("arm", Text),  # the rollout arm that contributed the hit; NULL: no rollout
    Column("snapshot", Text, nullable=False),
    Column("reported_at", Epoch, nullable=False),
    PrimaryKeyConstraint("tenant", "request_id", "reporter", "target", "signal"),  # the same signal twice: once
    Index("feedback_by_doc", "tenant", "doc_id"),
    Index("feedback_by_time", "tenant", "reported_at"),
)

# --- rollouts (index_snapshots/rollouts.py), 0013 -----------------------------------------------------------------

# A candidate snapshot tried on a share of live traffic, step by step, and promoted or stopped on the feedback its
# answers got. The answers it served name it in answers.rollout; its figures are computed from them and their signals.
rollouts = Table(
    "rollouts", metadata,
    Column("id", Text, primary_key=True),  # ro_...
    Column("tenant", Text, nullable=False),
    # The tenant while the rollout runs, NULL once it ended: unique, so a tenant has one running rollout at a time
    # whichever replica starts one (NULLs never collide).
    Column("running", Text, unique=True),
    Column("candidate", Text, nullable=False),  # snapshot hash
    Column("live", Text, nullable=False),  # the live snapshot when it started
    Column("mode", Text, nullable=False),  # interleave | canary
    Column("steps", Text, nullable=False),  # JSON list of traffic shares, ascending, the last one the final step
    Column("step", Integer, nullable=False, server_default="0"),  # index into steps
    Column("step_base", Integer, nullable=False, server_default="0"),  # feedback events counted when it began
    Column("min_feedback", Integer, nullable=False),  # events a step needs before any decision
    Column("max_regression", Epoch, nullable=False),
    Column("confidence", Epoch, nullable=False),
    Column("state", Text, nullable=False),  # running | promoted | stopped
    Column("reason", Text),  # why it ended
    Column("started_by", Text, nullable=False),  # gate | api key <id> | keyless caller
    Column("decisions", Text, nullable=False, server_default="[]"),  # JSON: the decision log, oldest first
    Column("started_at", Epoch, nullable=False),
    Column("updated_at", Epoch, nullable=False),
    Column("ended_at", Epoch),
    Index("rollouts_by_tenant", "tenant", "started_at"),
)

# --- API keys (snapdex/keys.py) ----------------------------------------------------------------------------------

api_keys = Table(
    "api_keys", metadata,
    Column("id", Text, primary_key=True),  # public: shown in listings, logs and rate-limit messages
    Column("sha256", Text, nullable=False, unique=True),  # of the whole key; the key itself is never stored
    Column("tenant", Text),  # NULL: an operator key
    Column("name", Text, nullable=False, server_default=""),
    # 0006: admin (the whole tenant; every key made before scopes), service (retrieves on behalf of a principal it
    # names), user (a fixed principal: principal_user and principal_groups).
    Column("scope", Text, nullable=False, server_default="admin"),
    Column("principal_user", Text),
    Column("principal_groups", Text),  # JSON list
    Column("created_at", Epoch, nullable=False),
    Column("revoked_at", Epoch),
)

# --- coordination (db/locks.py) ----------------------------------------------------------------------------------

# 0002: leases with an expiry, renewed by their holder: the per-tenant build lock on SQLite. PostgreSQL takes a
# session advisory lock instead, which the server drops the moment the holder's connection dies.
leases = Table(
    "leases", metadata,
    Column("name", Text, primary_key=True),
    Column("holder", Text, nullable=False),  # host:pid:token
    Column("acquired_at", Epoch, nullable=False),
    Column("expires_at", Epoch, nullable=False),
)

# --- sources: folders, buckets, repositories and sites kept in sync (sources/), 0010 ----------------------------

sources = Table(
    "sources", metadata,
    Column("id", Text, primary_key=True),  # src_...: its documents' ids start with it (`<id>:<path or URL>`)
    Column("tenant", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("kind", Text, nullable=False),  # folder | s3 | git | web (sources/kinds.py)
    Column("config", Text, nullable=False),  # JSON object, its credentials left out
    # The credentials of the config (S3 keys, a git token) as a JSON object, encrypted (Fernet) under a key derived
    # from SNAPDEX_WEBHOOK_SECRET_KEY, as webhook secrets are (notify/secrets.py); null when it has none.
    Column("secrets", LargeBinary),
    Column("schedule", Text),  # JSON: {"cron": "*/30 * * * *"} or {"every_s": 1800}; null: syncs on request only
    Column("metadata", Text, nullable=False, server_default="{}"),  # JSON object every document of it carries
    Column("access", Text),  # JSON {"users": [...], "groups": [...]} its documents get; null: the whole tenant
    Column("access_rev", Integer, nullable=False, server_default="0"),  # moved by every change of `access`
    Column("created_at", Epoch, nullable=False),
    Column("updated_at", Epoch, nullable=False),
    Column("next_sync_at", Epoch),  # when the schedule fires next; null: no schedule
    Column("running_sync", Text),  # the sync running now: one at a time per source (set and cleared atomically)
    Column("syncs_succeeded", Integer, nullable=False, server_default="0"),
    Column("syncs_failed", Integer, nullable=False, server_default="0"),
    UniqueConstraint("tenant", "name"),
    Index("sources_due", "next_sync_at"),
)

source_syncs = Table(
    "source_syncs", metadata,
    Column("id", Text, primary_key=True),  # sync_...
    Column("source_id", Text, ForeignKey("sources.id", ondelete="CASCADE"), nullable=False),
    Column("tenant", Text, nullable=False),
    Column("trigger", Text, nullable=False),  # manual | schedule
    Column("status", Text, nullable=False),  # running | succeeded | failed
    Column("created_at", Epoch, nullable=False),
    Column("started_at", Epoch),  # its first run took the source's lock
    Column("finished_at", Epoch),
    Column("attempts", Integer, nullable=False, server_default="0"),  # runs started (a resumed sync counts 2)
    Column("counts", Text, nullable=False, server_default="{}"),  # JSON {listed, new, changed, unchanged, ...}
    Column("failures", Text, nullable=False, server_default="[]"),  # JSON [{item, doc_id, reason}], the first ones
    Column("error", Text),  # why a failed sync failed
    Column("job_ids", Text, nullable=False, server_default="[]"),  # JSON: the ingest jobs it staged
    Index("source_syncs_by_source", "source_id", "created_at"),
)

# What the last sync saw of each item of a source: what the next one compares the listing with.
source_items = Table(
    "source_items", metadata,
    Column("source_id", Text, ForeignKey("sources.id", ondelete="CASCADE"), nullable=False),
    Column("key", Text, nullable=False),  # its path in the source, or its URL
    Column("doc_id", Text, nullable=False),
    Column("state", Text, nullable=False),  # synced | deleted (kept until another sync, so a resumed one counts it)
    Column("version", Text),  # what says it changed without reading it: ETag, size and mtime, blob id
    Column("content_hash", Text),  # SHA-256 of the bytes ingested
    Column("modified", Epoch),  # when the source says it last changed
    Column("extra", Text, nullable=False, server_default="{}"),  # JSON: per kind (a page's ETag and links)
    Column("meta_hash", Text),  # of the source's metadata it was ingested with: a change re-ingests it
    Column("access_rev", Integer, nullable=False, server_default="0"),  # the source's access_rev it was written at
    Column("access_written", Text),  # JSON: the access list the sync gave its document ("null": the whole tenant)
    Column("own_access", Flag, nullable=False, server_default="0"),  # its document's own list (set later) is kept
    Column("sync_id", Text),  # the sync that wrote it last
    Column("outcome", Text),  # new | changed | deleted: what that sync counted it as
    PrimaryKeyConstraint("source_id", "key"),
)
