"""Celery time limits of ingest tasks travel in each message, set by the process that sends it (workers/celery_app.py
`configure`): a process configured again sends the new limits, not those Celery cached at its first send."""

from __future__ import annotations

from snapdex.settings import Settings
from workers import tasks
from workers.celery_app import configure


def _sent_limits() -> tuple[float, float]:
    options = tasks.ingest_job._get_exec_options()  # what apply_async puts in the message (Celery's own reading)
    return options["soft_time_limit"], options["time_limit"]


def test_a_process_configured_again_sends_the_new_limits(tmp_path):
    try:
        configure(Settings(data_dir=tmp_path / "a"))
        assert _sent_limits() == (1800, 2700)  # half and three quarters of the visibility timeout
        configure(Settings(data_dir=tmp_path / "b", task_soft_time_limit_s=3, task_time_limit_s=60))
        assert _sent_limits() == (3, 60)
    finally:
        configure(Settings(data_dir=tmp_path / "c"))


def test_a_soft_limit_that_lands_in_a_build_queues_the_build_again_and_fails_no_job(tmp_path, monkeypatch):
    """The pool signals the soft limit to the child process, not to the task: an ingest task that ends as its limit
    passes leaves it to the next task there, a build. That build is not over its time: its jobs wait for it again."""
    from celery.exceptions import SoftTimeLimitExceeded

    from harness.helpers import make_runtime, text_doc
    from index_snapshots.service import run_ingest_job
    from snapdex.runtime import set_runtime

    rt = make_runtime(tmp_path)
    set_runtime(rt)
    try:
        job_id = rt.jobs.create("default", [text_doc("seals", "Harbour seals rest on the sandbank at low tide.")])
        assert run_ingest_job(rt.ingestor, rt.jobs, job_id) == "default"
        build, queued = rt.snapshots.builder.build, []

        def signalled(tenant):
            raise SoftTimeLimitExceeded()

        monkeypatch.setattr(rt.snapshots.builder, "build", signalled)
        monkeypatch.setattr(tasks.build_snapshot, "apply_async", lambda args, **kw: queued.append(args))
        assert tasks.build_snapshot("default") is None
        view = rt.jobs.get(job_id)
        assert (view.status, view.phase) == ("running", "awaiting_build") and queued == [("default", False)]

        monkeypatch.setattr(rt.snapshots.builder, "build", build)
        assert tasks.build_snapshot(*queued[0]) is not None  # the build queued again settles the job
        assert rt.jobs.get(job_id).status == "succeeded"
    finally:
        set_runtime(None)
        rt.close()
