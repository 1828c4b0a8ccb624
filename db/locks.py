"""Locks between processes on any host, through the catalog database: no file lock on a shared volume.

`Locks.hold(name)` is exclusive across every process that shares the catalog (one holder per name; two threads of
one process exclude each other too). On PostgreSQL it is a session advisory lock on a connection kept for the
purpose: the server drops it the moment that connection dies, so a holder killed with `kill -9` frees it at once.
On SQLite it is a lease row in `leases` with an expiry that a thread of the holder renews; a dead holder's lease
runs out after `lease_s` (at once when the holder was a process of this host that no longer exists).

The same lease machinery (`Renewer`, `holder_id`, `holder_gone`) keeps job claims alive (ingest/jobs.py).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from sqlalchemy import delete, func, select, update

from db.engine import Database, lock_key
from db.tables import leases

log = logging.getLogger(__name__)


class LockTimeout(TimeoutError):
    """The lock stayed held by someone else for longer than the caller would wait."""


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").removeprefix("pid:").strip("[]")
    except OSError:
        return "?"


_HOST, _PIDNS = socket.gethostname().replace(":", "_"), _pid_namespace()


def holder_id() -> str:
    """Who holds a lease: host, PID namespace, process and a token of this one acquisition."""
    return f"{_HOST}:{_PIDNS}:{os.getpid()}:{secrets.token_hex(4)}"


def holder_gone(holder: str) -> bool:
    """Whether a holder was a process of this host (and PID namespace) that no longer exists: its lease need not
    run out. Anything else (another host, a container of its own, a process still there) is left to the expiry."""
    try:
        host, pidns, pid, _ = holder.split(":")
    except ValueError:
        return False
    if host != _HOST or pidns != _PIDNS or pidns == "?" or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # there, but not ours to signal
        return False
    return False


class Renewer:
    """A daemon thread that renews a lease every `every_s` seconds until stopped; `lost` once a renewal found the
    lease taken (the holder stalled past its expiry)."""

    def __init__(self, every_s: float, renew: Callable[[], bool], what: str) -> None:
        self.every_s, self.renew, self.what = every_s, renew, what
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"renew {what}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                if not self.renew():
                    self.lost = True
                    log.error("lost the lease on %s: it ran out before it was renewed", self.what)
                    return
            except Exception:  # the database away for a moment: try again at the next beat, within the lease
                log.warning("could not renew the lease on %s", self.what, exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class Locks:
    def __init__(self, db: Database, lease_s: float = 30.0, poll_s: float = 0.2) -> None:
        if lease_s <= 0:
            raise ValueError(f"lease_s={lease_s} must be positive")
        self.db, self.lease_s, self.poll_s = db, lease_s, poll_s

    @contextmanager
    def hold(self, name: str, timeout: float | None = None) -> Iterator[None]:
        """Hold `name` for the block; wait for it at most `timeout` seconds (None: as long as it takes), then
        LockTimeout."""
        with (self._advisory(name, timeout) if self.db.postgresql else self._lease(name, timeout)):
            yield

    # --- PostgreSQL: a session advisory lock ------------------------------------------------------

    @contextmanager
    def _advisory(self, name: str, timeout: float | None) -> Iterator[None]:
        key = lock_key("lock", name)
        conn = self.db.reader.connect()  # autocommit: the lock belongs to the session, no transaction stays open
        try:
            if timeout is None:
                conn.execute(select(func.pg_advisory_lock(key)))
            else:
                deadline = time.monotonic() + timeout
                while not conn.execute(select(func.pg_try_advisory_lock(key))).scalar():
                    if time.monotonic() >= deadline:
                        raise LockTimeout(f"{name} is held by another process")
                    time.sleep(self.poll_s)
        except BaseException:
            conn.close()
            raise
        try:
            yield
        finally:
            try:
                conn.execute(select(func.pg_advisory_unlock(key)))
            except Exception:  # the session is gone or broken: closing it for good releases the lock
                conn.invalidate()
            conn.close()

    # --- SQLite (or any): a lease row with an expiry ---------------------------------------------

    @contextmanager
    def _lease(self, name: str, timeout: float | None) -> Iterator[None]:
        holder = holder_id()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._acquire(name, holder):
            if deadline is not None and time.monotonic() >= deadline:
                raise LockTimeout(f"{name} is held by {self._holder(name) or 'another process'}")
            time.sleep(self.poll_s)
        renewer = Renewer(self.lease_s / 3, lambda: self._renew(name, holder), name)
        try:
            yield
        finally:
            renewer.stop()
            with self.db.tx() as c:
                c.execute(delete(leases).where(leases.c.name == name, leases.c.holder == holder))

    def _acquire(self, name: str, holder: str) -> bool:
        now = self.db.now()
        stmt = self.db.insert(leases).values(name=name, holder=holder, acquired_at=now, expires_at=now + self.lease_s)
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={"holder": stmt.excluded.holder, "acquired_at": stmt.excluded.acquired_at,
                  "expires_at": stmt.excluded.expires_at},
            where=leases.c.expires_at < now,
        ).execution_options(preserve_rowcount=True)  # an INSERT's rowcount is kept only when asked
        with self.db.tx() as c:
            if c.execute(stmt).rowcount == 1:
                return True
            current = c.execute(select(leases.c.holder).where(leases.c.name == name)).scalar()
            if current is not None and holder_gone(current):
                # Its holder died on this host: no need to wait for the expiry.
                log.warning("taking over %s from %s, a process that no longer exists", name, current)
                c.execute(update(leases).where(leases.c.name == name, leases.c.holder == current)
                          .values(holder=holder, acquired_at=now, expires_at=now + self.lease_s))
                return True
        return False

    def _renew(self, name: str, holder: str) -> bool:
        with self.db.tx() as c:
            return c.execute(update(leases).where(leases.c.name == name, leases.c.holder == holder)
                             .values(expires_at=self.db.now() + self.lease_s)).rowcount == 1

    def _holder(self, name: str) -> str | None:
        return self.db.scalar(select(leases.c.holder).where(leases.c.name == name))
