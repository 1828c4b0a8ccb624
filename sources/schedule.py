"""When a source syncs by itself: a cron expression (five fields, minute hour day-of-month month day-of-week, in UTC,
read by Celery's own crontab) or a fixed interval, {"every_s": N}. Celery beat sends a tick every
SNAPDEX_SOURCE_TICK_S; each tick starts a sync of every source whose next time has come (sources/sync.py)."""

from __future__ import annotations

import datetime as dt

from errors import InvalidInput

MAX_EVERY_S = 31 * 86400


def _refused(message: str) -> InvalidInput:
    """A refusal naming the request's `schedule` field, the one place a schedule comes from."""
    return InvalidInput(message, loc=("body", "schedule"), kind="schedule")


def parse(value: object, min_interval_s: float) -> dict | None:
    """The stored form of a schedule as a request gives it: {"cron": "..."}, {"every_s": n} or None. InvalidInput
    (a ValueError) saying what is wrong."""
    if value is None:
        return None
    if isinstance(value, str):
        fields = value.split()
        if len(fields) != 5:
            raise _refused(f"schedule {value!r} is not a cron expression of five fields (minute hour day-of-month "
                           "month day-of-week), e.g. \"*/30 * * * *\"")
        try:
            _crontab(value)
        except (ValueError, IndexError, KeyError) as e:
            raise _refused(f"schedule {value!r} is not a cron expression: {e}") from e
        return {"cron": " ".join(fields)}
    if isinstance(value, dict) and set(value) == {"every_s"}:
        every = value["every_s"]
        if isinstance(every, bool) or not isinstance(every, (int, float)) or not min_interval_s <= every <= MAX_EVERY_S:
            raise _refused(f"schedule every_s must be a number of seconds in [{min_interval_s:g}, {MAX_EVERY_S}] "
                           "(SNAPDEX_SOURCE_MIN_INTERVAL_S is the least)")
        return {"every_s": every}
    raise _refused('schedule must be a cron expression ("*/30 * * * *"), {"every_s": seconds}, or null')


def shown(stored: dict | None) -> str | dict | None:
    """A stored schedule as the API shows it: the form it was given in."""
    if stored is None:
        return None
    return stored["cron"] if "cron" in stored else {"every_s": stored["every_s"]}


def _crontab(expression: str):
    from celery.schedules import crontab

    return crontab.from_string(expression)


def next_time(stored: dict | None, after: float) -> float | None:
    """Epoch seconds of the first time after `after` the schedule fires; None without a schedule."""
    if stored is None:
        return None
    if "every_s" in stored:
        return after + float(stored["every_s"])
    cron = _crontab(stored["cron"])
    last = dt.datetime.fromtimestamp(after, dt.timezone.utc)
    # Celery answers how long from now until the first time after `last`: add it to now.
    now = dt.datetime.now(dt.timezone.utc)
    return (now + cron.remaining_estimate(last)).timestamp()
