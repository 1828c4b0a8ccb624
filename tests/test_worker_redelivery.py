"""Production shape of the queue: a real redis-server, `snapdex worker` processes, and a kill -9 mid-task."""

from __future__ import annotations

import json
import signal

import pytest

from ingest.jobs import NewDocument
from snapdex.runtime import Runtime
from snapdex.settings import Settings
from harness.procs import redis_server, snapdex_worker, wait_until

pytestmark = pytest.mark.slow


def scifact_docs(scifact_dir, n: int) -> list[NewDocument]:
    docs = []
    with (scifact_dir / "corpus.jsonl").open() as fh:
        for line, _ in zip(fh, range(n)):
            d = json.loads(line)
            docs.append(NewDocument(d["_id"], f"{d['title']}\n\n{d['text']}".encode(), {"title": d["title"]}))
    return docs


def test_worker_killed_mid_task_job_still_finishes_once(tmp_path, scifact_dir):
    data = tmp_path / "data"
    with redis_server(tmp_path / "redis") as redis_url:
        env = dict(SNAPDEX_BROKER_URL=redis_url + "/0", SNAPDEX_EMBEDDED_WORKER="false",
                   SNAPDEX_VISIBILITY_TIMEOUT_S="10", SNAPDEX_BROKER_RESTORE_INTERVAL_S="1",
                   SNAPDEX_EMBEDDING_BATCH_SIZE="16")
        settings = Settings(data_dir=data, broker_url=redis_url + "/0", embedded_worker=False,
                            visibility_timeout_s=10, broker_restore_interval_s=1)
        # The test process only stages the job and enqueues it, as the API does; it never opens the store.
        rt = Runtime(settings)
        from workers.celery_app import configure
        from workers import tasks

        configure(settings)
        job_id = rt.jobs.create("default", scifact_docs(scifact_dir, 300))
        tasks.ingest_job.delay(job_id)

        with snapdex_worker(data, "first", **env) as first:
            wait_until(lambda: (rt.jobs.get(job_id).phase == "embedding" and rt.jobs.get(job_id).chunks_done > 0),
                       240, "the first worker to be embedding")
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        mid = rt.jobs.get(job_id)
        # Killed part way: documents are left (chunks_done may equal chunks_total for a moment, while the embedding
        # thread has caught up with the batches handed over and parsing fills the next one).
        assert mid.status == "running" and sum(mid.counts.values()) < 300

        with snapdex_worker(data, "second", **env):
            wait_until(lambda: rt.jobs.get(job_id).status in ("succeeded", "failed"), 400, "the redelivered job")
        view = rt.jobs.get(job_id)
        assert view.status == "succeeded", view.error
        assert view.attempts == 2
        assert view.docs_done == 300 and view.counts["failed"] == 0
        assert view.counts["new"] + view.counts["duplicate"] + view.counts["near_duplicate"] == 300
        # Nothing duplicated: one point per distinct chunk, and the chunks embedded before the kill were not
        # embedded again (the second attempt reused them from the cache).
        live = rt.manifest.live("default")
        chunks = {h for d in rt.catalog.documents("default") for h in d.chunk_hashes}
        assert live.chunks == len(chunks)
        assert view.chunks_reused >= mid.chunks_done
