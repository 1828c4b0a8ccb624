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
