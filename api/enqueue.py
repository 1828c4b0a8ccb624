"""The one place the API reaches into workers/: sending a task. A broker that is down is a 503, not a 500."""

from __future__ import annotations

import logging

from fastapi import HTTPException

from workers import tasks

log = logging.getLogger(__name__)


def enqueue(task: str, *args: object, countdown: float | None = None) -> None:
    try:
        getattr(tasks, task).apply_async(args=args, countdown=countdown, retry=True,
                                         retry_policy={"max_retries": 2, "interval_start": 0.2})
    except Exception as e:  # kombu raises OperationalError and friends when the broker is unreachable
        raise HTTPException(status_code=503, detail=f"queue unavailable: {type(e).__name__}",
                            headers={"Retry-After": "5"}) from e


def run_here(task: str, *args: object) -> None:
    """Run a task in this process, on the caller's thread: the same task code without the queue. The embedded
    service delivers webhooks so, on threads of its own: Celery allows one worker per process (a second one
    would share the first's event loop), and an alert must not wait behind the ingest job that worker runs."""
    result = getattr(tasks, task).apply(args=args)
    if result.failed():
        log.error("task %s%r failed: %s", task, args, result.result)
