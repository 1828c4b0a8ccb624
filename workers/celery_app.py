"""The Celery application. Configured from Settings by whoever starts a process (serve or worker)."""

from __future__ import annotations

import logging
import threading

from celery import Celery

from snapdex.settings import Settings

app = Celery("snapdex", include=["workers.tasks"])

DEFAULT_QUEUE = "celery"  # ingest, builds, evaluations, tuning (snapdex_queue_messages counts it)
# Webhook deliveries have their own queue: an alert must not wait behind a long ingest job or a build.
WEBHOOK_QUEUE = "snapdex-webhooks"


def configure(settings: Settings) -> Celery:
    redis_broker = settings.broker_url.startswith(("redis://", "rediss://"))
    if app.conf.broker_url != settings.broker_url:
        # A process configured again for another broker (tests do) must not publish through connections pooled
        # for the old one: drop the pools, as Celery itself does after a fork.
        app._after_fork()
    app.conf.update(
        broker_url=settings.broker_url,
        result_backend=settings.result_backend,
        task_ignore_result=settings.result_backend is None,
        task_serializer="json",
        task_default_queue=DEFAULT_QUEUE,
        task_routes={"snapdex.deliver_webhook": {"queue": WEBHOOK_QUEUE}},
        accept_content=["json"],
        # Nothing lost on a crash: a message is acknowledged only after its task returns, and a worker that
        # dies mid-task gives the message back. Tasks are idempotent, so running one twice is safe.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        # Celery beat sends one message, the sources' tick; the schedule itself is in the catalog (each source's next
        # sync time), so the beat keeps no state (no schedule file) and a tick that waited past the next is dropped.
        beat_schedule={"snapdex-sources-tick": {"task": "snapdex.sources_tick", "schedule": settings.source_tick_s,
                                                "options": {"expires": settings.source_tick_s}}},
        beat_scheduler="celery.beat:Scheduler",
        beat_max_loop_interval=min(5.0, settings.source_tick_s),
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
    # Enforced by prefork workers only: Celery's threads pool has no time limits (see workers/tasks.py). Set on the
    # task before a worker starts, which reads them once.
    from workers.tasks import ingest_job

    ingest_job.soft_time_limit, ingest_job.time_limit = settings.task_time_limits
    # Celery caches a task's send options, the limits among them, at its first send (Task._get_exec_options; its
    # own bind() clears the cache so): a process configured again (tests do) would send the old ones.
    ingest_job._exec_options = None
    return app


class EmbeddedWorker:
    """A worker inside the service's own process: the embedded engines allow one process per data folder."""

    def __init__(self, concurrency: int, queues: list[str] | None = None, name: str = "embedded") -> None:
        # Celery sets the root logger's level to the worker's: keep the level the service was started with.
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
        self.worker = app.Worker(
            pool="threads", concurrency=concurrency, without_heartbeat=True, without_mingle=True,
            without_gossip=True, loglevel=level, quiet=True, queues=queues or [DEFAULT_QUEUE, WEBHOOK_QUEUE],
            hostname=f"{name}@%h",
        )
        self.thread = threading.Thread(target=self.worker.start, name=f"celery-{name}-worker", daemon=True)
        self.thread.start()

    def stop(self, grace_s: float) -> bool:
        """Warm shutdown: take no new task and give the running one `grace_s` to finish. False when it is still
        running: its job stays 'running' in the catalog and is enqueued again on the next start (what it
        embedded is cached), so nothing is lost either way."""
        stopper = threading.Thread(target=self.worker.stop, name="celery-embedded-stop", daemon=True)
        stopper.start()
        stopper.join(grace_s)
        return not stopper.is_alive()


class EmbeddedBeat:
    """Celery beat on a thread of the service's own process: with the embedded memory:// broker only a beat in this
    process reaches its worker. It sends the sources' tick (workers/tasks.py sources_tick) every
    SNAPDEX_SOURCE_TICK_S."""

    def __init__(self) -> None:
        from celery.beat import EmbeddedService

        # The plain Scheduler (Service's default is the persistent one, which writes a schedule file in the cwd).
        self.service = EmbeddedService(app, thread=True, scheduler_cls=app.conf.beat_scheduler)
        self.service.start()

    def stop(self) -> None:
        self.service.stop()
