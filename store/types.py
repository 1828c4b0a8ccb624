"""Plain data types shared by every vector store backend."""

from __future__ import annotations

from dataclasses import dataclass

import numpy


@dataclass(frozen=True)
class SparseVector:
    indices: list[int]
    values: list[float]


@dataclass
class Point:
    id: str  # a UUID string
    dense: list[float] | numpy.ndarray
    sparse: SparseVector
    payload: dict
    # Sentence-window vectors (n, dim) for the late-interaction stage; only in collections made with windows=True.
    windows: list[list[float]] | numpy.ndarray | None = None


@dataclass
class Hit:
    id: str
    score: float
    payload: dict


@dataclass
class Record:
    id: str
    payload: dict
    dense: list[float] | None = None
    sparse: SparseVector | None = None
    windows: list[list[float]] | None = None  # sentence-window vectors, when asked for and the point has them
