"""Every document is parsed in a child process, under a wall-clock and a memory limit.

A parser can loop or allocate without end on a few hundred hostile bytes (PDFium loads a page whose resources
draw themselves for ever, growing ~240 MB/s; unstructured's and our own regular expressions are quadratic on some
texts), in C code that no thread can interrupt. So `ParserPool` hands each document to a child process
(`ingest/parse_child.py`) and waits for its answer, watching the clock and the child's memory. Past a limit it
kills the child (and tesseract under it), the document fails alone with a reason naming the limit and its setting
(`ParseLimitExceeded`), and the next document gets a new child. A child that dies any other way (a C parser's
segfault) fails only its document too, with what killed it.

Children are reused across documents (one per parse running at once), start in ~0.1 s with only the parser
imported, load unstructured and spaCy (~230 MB, ~2 s) with the first document that needs them, and exit after
`idle_exit_s` without work, so a process that has stopped ingesting does not keep that memory.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import site
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Callable, NoReturn

from ingest import parse_child
from ingest.formats import DEFAULT_OCR_LANGUAGES, ParsedDocument, ParseError

_ROOT = Path(__file__).resolve().parents[1]  # where `ingest` is imported from: the child imports the same code
# An installed package is found from site-packages anyway; a checkout (a test run, an editable install of another
# checkout) goes first on the child's path. site-packages itself must not: it would come before the standard library.
_EXTRA_PATH = [] if str(_ROOT) in {*site.getsitepackages(), site.getusersitepackages()} else [str(_ROOT)]
# How often the parent looks at the clock and the child's memory while it waits. Growing at PDFium's ~240 MB/s,
# a child passes the memory limit by at most ~5 MB before it is killed.
POLL_S = 0.02
LOAD_TIMEOUT_S = 300.0  # loading unstructured and spaCy in a child (~2 s; slow disks, busy cores)
START_TIMEOUT_S = 60.0  # a new child's start-up (~0.1 s), not counted in any document's time


@dataclass(frozen=True)
class ParseLimits:
    """Per document (SNAPDEX_PARSE_TIMEOUT_S, SNAPDEX_PARSE_MEMORY_MB), and what the children are told."""

    timeout_s: float = 60.0
    memory_mb: int = 1536  # how it was chosen: snapdex/settings.py, parse_memory_mb
    ocr_languages: str = DEFAULT_OCR_LANGUAGES
    idle_exit_s: float = 60.0

    def __post_init__(self) -> None:
        if not (0 < self.timeout_s < float("inf")):
            raise ValueError(f"parse timeout must be a positive number of seconds, got {self.timeout_s}")
        if self.memory_mb <= 0:
            raise ValueError(f"parse memory limit must be a positive number of MiB, got {self.memory_mb}")

    @property
    def memory_bytes(self) -> int:
        return self.memory_mb * 1024 * 1024

    def timeout_reason(self) -> str:
        return f"parse exceeded {self.timeout_s:g} s (SNAPDEX_PARSE_TIMEOUT_S)"

    def memory_reason(self) -> str:
        return f"parse exceeded {self.memory_mb} MiB (SNAPDEX_PARSE_MEMORY_MB)"


class ParseLimitExceeded(ParseError):
    """The document passed its time or memory limit: its child was killed."""


class ParserFailed(ParseError):
    """The parser raised something other than a ParseError: a bug, not a bad document (the child's traceback
    goes to the log)."""

    def __init__(self, reason: str, child_traceback: str) -> None:
        super().__init__(reason)
        self.child_traceback = child_traceback


class _Gone(Exception):
    """The child exited without answering, of its own accord (idle, or recycled): another child may try again."""


# Children are started from this one thread: the kernel kills a child whose parent *thread* ends
# (PR_SET_PDEATHSIG), and the threads that parse (Celery's, an ingest's) may come and go. One per process: a
# Celery prefork process does not inherit its parent's threads.
_spawner: tuple[int, ThreadPoolExecutor] | None = None
_spawner_lock = threading.Lock()


def _spawn(*args, **kwargs) -> subprocess.Popen:
    global _spawner
    with _spawner_lock:
        if _spawner is None or _spawner[0] != os.getpid():
            _spawner = (os.getpid(), ThreadPoolExecutor(1, thread_name_prefix="parse-spawner"))
        executor = _spawner[1]
    return executor.submit(subprocess.Popen, *args, **kwargs).result()


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and its descendants (tesseract runs under the child)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += parse_child.rss(p)
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except (OSError, ValueError, IndexError):  # gone meanwhile
            continue
    return total


class _Child:
    def __init__(self, limits: ParseLimits) -> None:
        self.limits = limits
        ours, theirs = socket.socketpair()
        config = {"ocr_languages": limits.ocr_languages, "idle_exit_s": limits.idle_exit_s,
                  # Kernel backstop above the watchdog's limit (see ParserPool._wait): only an allocation faster
                  # than the watchdog's look reaches it.
                  "data_limit": limits.memory_bytes + limits.memory_bytes // 4,
                  # A child whose peak passed this exits after its document: the next starts clean.
                  "recycle_bytes": limits.memory_bytes // 2}
        # The child gets no SNAPDEX_* settings (database URLs, keys): it parses bytes and needs none of them.
        env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPDEX_")}
        path = os.pathsep.join([*_EXTRA_PATH, *filter(None, [env.pop("PYTHONPATH", None)])])
        if path:
            env["PYTHONPATH"] = path
        try:
            # -P: the working folder is not on the child's import path, only the code this process runs.
            self.proc = _spawn([sys.executable, "-P", "-m", "ingest.parse_child", str(theirs.fileno()),
                                str(os.getpid()), json.dumps(config)],
                               pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=env,
                               start_new_session=True)  # its own process group: a kill takes tesseract too
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        # One poll object for the child's life: Connection.poll builds a selector on every call (~25 us).
        self._poller = select.poll()
        self._poller.register(self.conn.fileno(), select.POLLIN)
        self.rusage = None
        try:
            ready = self.readable(START_TIMEOUT_S) and parse_child.unpack(self.conn.recv_bytes(1024))[0]
        except (EOFError, OSError, ValueError):
            ready = None
        if not ready or ready.get("event") != "ready":
            self.kill()
            raise ParseError(f"the parser process did not start (exit status {self.proc.returncode})")
        # The ru_maxrss it was started with (this process's, carried over fork and exec): a peak wait4 reports at
        # its death counts as the child's own only above it.
        self.inherited_peak = int(ready.get("inherited_peak", 0))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def readable(self, timeout_s: float) -> bool:
        """An answer (or the end of the socket) is there to read, waiting up to `timeout_s`."""
        return bool(self._poller.poll(max(0, int(timeout_s * 1000))))

    def alive(self) -> bool:
        return self.proc.returncode is None and self._reap(os.WNOHANG) is None

    def kill(self) -> None:
        if self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._reap(0)
        self.conn.close()

    def close(self) -> None:
        """Let an idle child go: it exits when its socket closes."""
        self.conn.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.kill()
        self._reap(os.WNOHANG)

    def _reap(self, flags: int) -> int | None:
        """The child's exit status once it has ended (None while it runs), with its resource use (its peak RSS)."""
        if self.proc.returncode is not None:
            return self.proc.returncode
        try:
            pid, status, rusage = os.wait4(self.proc.pid, flags)
        except ChildProcessError:
            self.proc.returncode = -1
            return -1
        if pid == 0:
            return None
        self.rusage = rusage
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        return self.proc.returncode


class ParserPool:
    """Parse documents in child processes under `limits`; one child per parse running at once, kept for the
    next document."""

    def __init__(self, limits: ParseLimits = ParseLimits()) -> None:
        self.limits = limits
        self._idle: list[_Child] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def parse_bytes(self, data: bytes, filename: str | None = None,
                    slow: Callable[[], None] | None = None) -> ParsedDocument:
        """`slow` is called (once, while the child works) if the parse has not answered within POLL_S."""
        return self._call({"op": "bytes", "filename": filename}, data, slow)["document"]

    def parse_text(self, utf8: bytes, filename: str | None = None,
                   slow: Callable[[], None] | None = None) -> ParsedDocument:
        """JSON-submitted text, as its UTF-8 bytes."""
        return self._call({"op": "text", "filename": filename}, utf8, slow)["document"]

    def warm_up(self) -> int:
        """Start a child and load unstructured and spaCy in it; returns the child's resident bytes."""
        header = self._call({"op": "warm"}, b"")
        return int(header.get("rss", 0))

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for child in idle:
            child.close()

    def _call(self, request: dict, payload: bytes, slow: Callable[[], None] | None = None) -> dict:
        message = parse_child.pack(request, [payload])
        for attempt in (1, 2):
            child = self._take()
            try:
                header = self._wait(child, message, slow)
                slow = None  # once, even when a child that had left is replaced
            except _Gone:
                child.kill()
                if attempt == 2:
                    raise ParseError("the parser process exited without answering, twice") from None
                continue
            except BaseException:
                # A limit, a crash, or this thread being interrupted (Celery's soft time limit): the child's state
                # is unknown, it does not parse again.
                child.kill()
                raise
            for level, name, text in header.pop("log", []):
                logging.getLogger(name).log(level, "%s", text)
            if header.get("memory"):  # a MemoryError under the kernel's backstop
                child.kill()
                raise ParseLimitExceeded(self.limits.memory_reason())
            self._give_back(child)
            if not header["ok"]:
                if header.get("traceback"):
                    raise ParserFailed(header["error"], header["traceback"])
                raise ParseError(header["error"])
            return header
        raise AssertionError("unreachable")

    def _take(self) -> _Child:
        if self._pid != os.getpid():
            # A forked process (a Celery prefork worker) inherits the idle children of the process that warmed up:
            # they are not its children; it lets go of its copies of their sockets and starts its own.
            for child in self._idle:
                child.conn.close()
            self._idle, self._lock, self._pid = [], threading.Lock(), os.getpid()
        with self._lock:
            while self._idle:
                child = self._idle.pop()
                if child.alive():
                    return child
                child.kill()
        return _Child(self.limits)

    def _give_back(self, child: _Child) -> None:
        with self._lock:  # one that has left since is found out when it is next taken
            self._idle.append(child)

    def _wait(self, child: _Child, message: bytes, slow: Callable[[], None] | None) -> dict:
        """Send one request and wait for its answer, killing the child past a limit.

        Memory: the parent reads the child's resident memory (with tesseract's under it) every POLL_S and kills it
        past the limit, so the reason names the limit. RLIMIT_AS cannot be it: it counts address space reserved and
        never touched (thread stacks, allocator arenas), not memory used. RLIMIT_DATA alone cannot either: malloc
        failing in C (PDFium) aborts the child, which looks like any other crash (measured: SIGABRT, exit 134).
        So RLIMIT_DATA is set a quarter above the limit as the kernel's backstop against an allocation too fast for
        the watchdog; a child that dies after its peak RSS passed the limit (wait4's ru_maxrss) or that answers
        with a MemoryError is reported as past the memory limit too."""
        limits = self.limits
        try:
            child.conn.send_bytes(message)
        except OSError:
            raise _Gone() from None
        deadline = time.monotonic() + limits.timeout_s
        remaining, loading_since = limits.timeout_s, None
        while True:
            now = time.monotonic()
            if now >= deadline:
                if loading_since is not None:
                    raise ParseError(f"the parser did not load within {LOAD_TIMEOUT_S:g} s")
                raise ParseLimitExceeded(limits.timeout_reason())
            if child.readable(min(POLL_S, deadline - now)):
                try:
                    header, blobs = parse_child.unpack(child.conn.recv_bytes(limits.memory_bytes))
                except EOFError:
                    break  # the child died
                except OSError as e:  # an answer larger than a child under the memory limit could have made
                    raise ParseLimitExceeded(limits.memory_reason()) from e
                except (ValueError, TypeError, KeyError) as e:
                    raise ParseError(f"the parser answered with a malformed message ({e})") from e
                event = header.get("event")
                if event == "loading":  # loading unstructured is not the document's time (see parse_child)
                    loading_since = time.monotonic()
                    remaining = deadline - loading_since
                    deadline = loading_since + LOAD_TIMEOUT_S
                    continue
                if event == "loaded":
                    deadline = time.monotonic() + remaining
                    loading_since = None
                    continue
                if header.get("ok") and "document" in header:
                    try:
                        header["document"] = parse_child.decode_document(header["document"], blobs)
                    except (ValueError, TypeError, KeyError) as e:
                        raise ParseError(f"the parser answered with a malformed message ({e})") from e
                return header
            if slow is not None:
                slow()
                slow = None
            if _tree_rss(child.pid) > limits.memory_bytes:
                raise ParseLimitExceeded(limits.memory_reason())
            if not child.alive() and not child.readable(0):  # an answer sent just before it exited is read first
                break
        self._died(child)

    def _died(self, child: _Child) -> NoReturn:
        code = child._reap(0)
        peak = child.rusage.ru_maxrss * 1024 if child.rusage is not None else 0
        if peak > self.limits.memory_bytes and peak > child.inherited_peak:
            raise ParseLimitExceeded(self.limits.memory_reason())
        if code == 0:
            raise _Gone()
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            raise ParseError(f"the parser crashed ({name})")
        raise ParseError(f"the parser exited with code {code} without answering")
