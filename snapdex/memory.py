"""Resident memory of this process, and what each component cost when it loaded.

Read from /proc (Linux): current RSS from /proc/self/statm, peak (VmHWM) from /proc/self/status. A component's
figure is the growth of the process's RSS while it loaded (its imports, weights, first allocations), measured
once, at start-up, where loads run one after another; later growth (an ONNX Runtime arena that widens with the
largest batch, pages of a collection read by queries) shows in the process total, not in a component.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def peak_rss_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


class MemoryLedger:
    """RSS growth per component, measured around its load."""

    def __init__(self) -> None:
        self.components: dict[str, int] = {}
        self.load_seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    @contextmanager
    def measure(self, component: str) -> Iterator[None]:
        before, started = rss_bytes(), time.perf_counter()
        try:
            yield
        finally:
            grown = max(rss_bytes() - before, 0)
            with self._lock:
                self.components[component] = self.components.get(component, 0) + grown
                self.load_seconds[component] = round(time.perf_counter() - started, 3)

    def record(self, component: str, resident: int) -> None:
        """A component that loaded in a child process of its own: that process's resident bytes."""
        with self._lock:
            self.components[component] = resident

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.components)
