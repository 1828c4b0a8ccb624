"""`folder`: a folder of the service's host, under one of the operator's roots (SNAPDEX_SOURCE_FOLDER_ROOTS).

An item is a regular file under the folder whose relative path the globs select; its version is its size and
modification time (nanoseconds), so a listing reads no file. Symbolic links are followed only to files inside the
folder; directories are not followed through links (a loop, or a way out of the folder). A subfolder that cannot be
listed is reported, and the items under it are kept, not deleted.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterator

from pydantic import Field

from sources.connectors.base import Globs, Item, ItemFailed, Known, Limits, SourceUnreachable, read_limited, under_roots


class FolderConfig(Globs):
    path: str = Field(min_length=1, max_length=4096, description="an absolute path under SNAPDEX_SOURCE_FOLDER_ROOTS")


def check(config: FolderConfig, limits: Limits) -> None:
    under_roots(config.path, limits.folder_roots, "folder")


class FolderSession:
    def __init__(self, config: FolderConfig, limits: Limits) -> None:
        self.config, self.limits = config, limits
        self.root = under_roots(config.path, limits.folder_roots, "folder")  # again: the roots or links may differ
        self.incomplete: list[str] = []

    def list(self, known: dict[str, Known]) -> Iterator[Item]:
        if not self.root.is_dir():
            raise SourceUnreachable(f"folder {self.config.path} is not there (or not a folder) now")
        count = 0

        def unlisted(e: OSError) -> None:
            rel = os.path.relpath(e.filename, self.root) if e.filename else "."
            if rel == ".":
                raise SourceUnreachable(f"folder {self.config.path} cannot be listed: {e.strerror}")
            self.incomplete.append(_key(rel) + "/")

        for top, dirs, files in os.walk(self.root, onerror=unlisted):
            dirs.sort()
            for name in sorted(files):
                path = Path(top) / name
                rel = _key(os.path.relpath(path, self.root))
                if not self.config.wants(rel):
                    continue
                item = self._item(path, rel)
                if item is None:
                    continue
                count += 1
                if count > self.limits.max_items:
                    raise SourceUnreachable(f"folder {self.config.path} holds more than {self.limits.max_items} "
                                            "items (SNAPDEX_SOURCE_MAX_ITEMS): narrow it with include/exclude")
                yield item

    def _item(self, path: Path, rel: str) -> Item | None:
        target = path
        try:
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                target = Path(os.path.realpath(path))
                if self.root not in target.parents:
                    return Item(rel, path.as_uri(), rel, error="a symbolic link to a file outside the folder")
                st = target.stat()
        except OSError as e:
            return Item(rel, path.as_uri(), rel, error=f"cannot be read: {e.strerror}")
        if not stat.S_ISREG(st.st_mode):
            return None
        return Item(rel, path.as_uri(), rel, version=f"{st.st_size}:{st.st_mtime_ns}", size=st.st_size,
                    modified=st.st_mtime, locator=target)

    def read(self, item: Item) -> bytes:
        if item.size is not None and item.size > self.limits.max_item_bytes:
            raise ItemFailed(f"{item.key} is larger than {self.limits.max_item_bytes} bytes (SNAPDEX_MAX_UPLOAD_BYTES)")
        try:
            # O_NOFOLLOW: a file swapped for a link since the listing is not followed out of the folder.
            fd = os.open(item.locator, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError as e:
            raise ItemFailed(f"{item.key} was removed while the sync ran") from e
        except OSError as e:
            raise ItemFailed(f"{item.key} cannot be read: {e.strerror}") from e
        with os.fdopen(fd, "rb") as fh:
            return read_limited(fh, self.limits.max_item_bytes, item.key)

    def close(self) -> None:
        pass


def _key(rel: str) -> str:
    """A relative path as an item key: `/`-separated, and text (bytes the file system holds that are not UTF-8 are
    written as escapes, so the key stays stable and storable)."""
    return os.fsencode(rel).decode("utf-8", "backslashreplace").replace(os.sep, "/")
