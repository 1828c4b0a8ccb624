"""The one place the API reaches into workers/: sending a task. A broker that is down is a 503, not a 500."""

from __future__ import annotations

from fastapi import HTTPException

from workers import tasks


def enqueue(task: str, *args: object) -> None:
    try:
        getattr(tasks, task).apply_async(args=args, retry=True, retry_policy={"max_retries": 2, "interval_start": 0.2})
    except Exception as e:  # kombu raises OperationalError and friends when the broker is unreachable
        raise HTTPException(status_code=503, detail=f"queue unavailable: {type(e).__name__}",
                            headers={"Retry-After": "5"}) from e
