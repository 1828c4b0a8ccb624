"""Sources: places a tenant's documents live (a folder of this host, an S3 bucket, a Git repository, a website),
registered once and kept in sync by snapdex itself, on request or on a schedule.

A sync lists the source, reads only the items whose version changed (ETag, size and mtime, blob id, a conditional
GET's answer) and of those ingests only the ones whose bytes changed, as documents `<source id>:<path or URL>` of
the source, through the same ingest jobs POST /ingest stages; the documents of items that are gone are marked
deleted, so the next snapshot leaves them out. One file per kind in connectors/, behind the registry in kinds.py;
the diff and the bookkeeping in sync.py; the tables in store.py.

Layering: above index_snapshots/ (a sync runs its ingest jobs through index_snapshots.service.run_ingest_job) and
below api/ and workers/, which call it.
"""
