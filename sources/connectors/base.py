"""What every connector shares: the items a listing yields, the errors a sync tells apart, include and exclude globs,
the limits the operator set, and the guarded HTTP fetch the web connector (and robots.txt, sitemaps) go through."""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Iterator, Protocol, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

# What a listing reads when no `include` is given: the file types the service parses (the folder ingest's list).
from wire.files import FILE_TYPES

MAX_GLOBS = 100


class SourceError(Exception):
    """The sync cannot go on (a bad config, a listing refused): it fails with this reason and deletes nothing."""


class SourceUnreachable(SourceError):
    """The source stopped answering (connection refused, timed out, the folder is gone): the sync fails with the
    reason and deletes nothing; the next one starts over."""


class ItemFailed(Exception):
    """One item could not be read: it is reported with the reason and read again at the next sync."""


@dataclass(frozen=True)
class Limits:
    """The operator's bounds on what sources may reach and read (SNAPDEX_SOURCE_*)."""

    folder_roots: tuple[Path, ...] = ()
    allow_private: bool = False
    timeout_s: float = 30.0
    max_items: int = 100_000
    max_item_bytes: int = 50 * 1024 * 1024  # SNAPDEX_MAX_UPLOAD_BYTES: what one upload may be
    data_dir: Path = Path("data")


@dataclass
class Item:
    """One item of a listing. `version` changes whenever its bytes may have (None: unknown, always read);
    `error`: listed but not readable now (reported as failed, its document kept)."""

    key: str  # its path in the source, or its URL: with the source's id, the document id
    uri: str  # where it lives, for people (metadata source_uri)
    filename: str  # what the parser is told the file is called (its suffix picks the format)
    version: str | None = None
    size: int | None = None
    modified: float | None = None  # epoch seconds (metadata source_modified)
    extra: dict = field(default_factory=dict)  # kept with the item for the next sync (a page's ETag and links)
    metadata: dict = field(default_factory=dict)  # per-item metadata besides source_* (git_commit)
    error: str | None = None
    locator: object = None  # how the connector reads it (a path on disk, a blob id); never stored


class Known(Protocol):
    """What the last sync recorded of an item (sources.store.ItemRow)."""

    key: str
    version: str | None
    extra: dict


class Session(Protocol):
    """One sync's view of a source: list it, then read the items whose version changed."""

    incomplete: list[str]  # key prefixes the listing could not see (their items are not deleted)

    def list(self, known: dict[str, Known]) -> Iterator[Item]: ...

    def read(self, item: Item) -> bytes: ...

    def close(self) -> None: ...


def iso(epoch: float | None) -> str | None:
    """Epoch seconds as metadata carries them: ISO 8601 in UTC."""
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="seconds")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- configs ------------------------------------------------------------------------------------------------------


def _glob(value: str) -> str:
    if not value or len(value) > 256 or "\x00" in value:
        raise ValueError("a glob is 1-256 characters")
    return value


class StrictConfig(BaseModel):
    """A kind's config: unknown fields refused. SECRETS name the fields sealed at rest and never shown."""

    model_config = ConfigDict(extra="forbid")
    SECRETS: ClassVar[tuple[str, ...]] = ()


class Globs(StrictConfig):
    include: list[str] | None = Field(default=None, max_length=MAX_GLOBS, description=(
        "globs an item's path must match one of (fnmatch: `*` matches across `/`; a leading `**/` also matches at "
        "the top); default: the file types the service parses"))
    exclude: list[str] = Field(default_factory=list, max_length=MAX_GLOBS, description="globs that leave an item out")

    @field_validator("include", "exclude")
    @classmethod
    def _globs(cls, values: list[str] | None) -> list[str] | None:
        return None if values is None else [_glob(v) for v in values]

    def wants(self, path: str) -> bool:
        return selected(path, self.include, self.exclude)


def _match(path: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(path, pattern) or (pattern.startswith("**/") and fnmatch.fnmatchcase(path, pattern[3:]))


def selected(path: str, include: Sequence[str] | None, exclude: Sequence[str]) -> bool:
    """Whether a relative path is part of the source: it matches an `include` glob (None: its suffix is a type the
    service parses) and no `exclude` glob."""
    if include is None:
        wanted = os.path.splitext(path)[1].lower() in FILE_TYPES
    else:
        wanted = any(_match(path, p) for p in include)
    return wanted and not any(_match(path, p) for p in exclude)


def under_roots(path: str, roots: Sequence[Path], what: str) -> Path:
    """`path` resolved (symbolic links followed), if it is one of the operator's roots or inside one; SourceError
    naming SNAPDEX_SOURCE_FOLDER_ROOTS otherwise."""
    if not roots:
        raise SourceError(f"{what} sources read folders of the service's host, and none is allowed: an operator lists "
                          "the folders they may read in SNAPDEX_SOURCE_FOLDER_ROOTS")
    p = Path(path)
    if not p.is_absolute():
        raise SourceError(f"{what} path {path!r} must be absolute")
    resolved = Path(os.path.realpath(p))
    for root in roots:
        real_root = Path(os.path.realpath(root))
        if resolved == real_root or real_root in resolved.parents:
            return resolved
    raise SourceError(f"{what} path {path!r} is outside the folders this service may read "
                      f"(SNAPDEX_SOURCE_FOLDER_ROOTS: {', '.join(str(r) for r in roots)})")


def read_limited(stream, limit: int, what: str) -> bytes:
    """At most `limit` bytes of a file-like object; ItemFailed naming SNAPDEX_MAX_UPLOAD_BYTES past it."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise ItemFailed(f"{what} is larger than {limit} bytes (SNAPDEX_MAX_UPLOAD_BYTES)")
    return data
