"""The Celery application. Configured from Settings by whoever starts a process (serve or worker)."""

from __future__ import annotations

import logging
import threading

from celery import Celery

from snapdex.settings import Settings

app = Celery("snapdex", include=["workers.tasks"])


def configure(settings: Settings) -> Celery:
    redis_broker = settings.broker_url.startswith(("redis://", "rediss://"))
    app.conf.update(
        broker_url=settings.broker_url,
        result_backend=settings.result_backend,
        task_ignore_result=settings.result_backend is None,
        task_serializer="json",
        accept_content=["json"],
        # Nothing lost on a crash: a message is acknowledged only after its task returns, and a worker that
        # dies mid-task gives the message back. Tasks are idempotent, so running one twice is safe.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        broker_transport_options=(
            {
                "visibility_timeout": settings.visibility_timeout_s,
                # kombu sweeps for unacked messages of dead workers every interval * throttle seconds
                # (defaults 10 * 10); a sweep per interval keeps redelivery close to the visibility timeout.
                "unacked_restore_interval": settings.broker_restore_interval_s,
                "unacked_restore_throttle": 1,
            }
            if redis_broker
            else {"polling_interval": 0.01}  # memory:// polls once a second by default
        ),
    )
    return app


def start_embedded_worker(concurrency: int) -> threading.Thread:
    """A worker inside the service's own process: the embedded engines allow one process per data folder."""
    # Celery sets the root logger's level to the worker's: keep the level the service was started with.
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
    worker = app.Worker(
        pool="threads", concurrency=concurrency, without_heartbeat=True, without_mingle=True,
        without_gossip=True, loglevel=level, quiet=True,
    )
    thread = threading.Thread(target=worker.start, name="celery-embedded-worker", daemon=True)
    thread.start()
    return thread
