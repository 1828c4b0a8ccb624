"""The life of an ingest job: its status, its phase, and which phase may follow which.

    queued ─> parsing ─> embedding ─> awaiting_build ─> building ─> evaluating ─> done
                     └─────────────────┘ (nothing new to embed)
              (status running from parsing on; a job is settled, succeeded or failed, once its phase is done)

The job store refuses any other step (`InvalidTransition`), so a stray write cannot send a settled job back to
work or skip its build. The API reports these values, the workers drive the ingest phases and the snapshot service
the build phases. The status and phase enums are wire/jobs.py's, where the client reads them too.
"""

from __future__ import annotations

from wire.jobs import SETTLED, JobPhase, JobStatus  # noqa: F401 - the job store's names


# A job in these phases has all its documents in: a redelivered message only has the build left to trigger, and
# a build settles it.
BUILD_PHASES = frozenset({JobPhase.AWAITING_BUILD, JobPhase.BUILDING, JobPhase.EVALUATING})

# Phase -> the phases it may go to. None is a queued job that has not started.
TRANSITIONS: dict[JobPhase | None, frozenset[JobPhase]] = {
    None: frozenset({JobPhase.PARSING, JobPhase.DONE}),
    # A job whose worker died starts again from parsing (documents done are skipped). Embedding overlaps parsing
    # and starts with the first batch of new chunks: a job with none (every document unchanged, duplicate or
    # failed) goes from parsing straight to its build.
    JobPhase.PARSING: frozenset({JobPhase.PARSING, JobPhase.EMBEDDING, JobPhase.AWAITING_BUILD, JobPhase.DONE}),
    JobPhase.EMBEDDING: frozenset({JobPhase.PARSING, JobPhase.EMBEDDING, JobPhase.AWAITING_BUILD, JobPhase.DONE}),
    JobPhase.AWAITING_BUILD: frozenset({JobPhase.BUILDING, JobPhase.DONE}),
    # Back to awaiting_build when the build meets a transient error and is retried; building again when a build
    # that crashed is taken up by the next one.
    JobPhase.BUILDING: frozenset({JobPhase.BUILDING, JobPhase.EVALUATING, JobPhase.AWAITING_BUILD, JobPhase.DONE}),
    JobPhase.EVALUATING: frozenset({JobPhase.BUILDING, JobPhase.AWAITING_BUILD, JobPhase.DONE}),
    JobPhase.DONE: frozenset(),
}


class InvalidTransition(ValueError):
    pass


def sources_of(phase: JobPhase) -> list[JobPhase | None]:
    """The phases a job may be in to move to `phase`."""
    return [p for p, nxt in TRANSITIONS.items() if phase in nxt]


def check(current: JobPhase | str | None, new: JobPhase) -> None:
    current = JobPhase(current) if current is not None else None
    if new not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing (it is settled)"
        raise InvalidTransition(f"a job in phase {current or 'queued'} cannot go to {new}; allowed: {allowed}")
