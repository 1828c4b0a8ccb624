"""`git`: the files of a branch's head in a Git repository, read with the `git` command.

The branch's head is fetched (shallow: one commit, no tags) into a bare copy of the repository kept under the data
folder (<data_dir>/sources/<source id>.git). An item is a file of that commit's tree whose path the globs select;
its version is its blob id, so only the files whose content changed are read. Each document carries the commit it
was read at (`git_commit`) and that commit's time (`source_modified`): a file no commit touched since keeps the
commit it was first read at, which holds the same content.

A repository is an https:// (or http://) URL, or a local repository under SNAPDEX_SOURCE_FOLDER_ROOTS; no other
transport (ssh, git://, ext::) is allowed. A token goes in an Authorization header set through git's environment,
never in the URL, the command line or the copy's config; URLs carrying credentials are refused. Redirects are not
followed, and a host resolving to a private address is refused unless SNAPDEX_SOURCE_ALLOW_PRIVATE.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import ClassVar, Iterator
from urllib.parse import unquote, urlsplit

from pydantic import Field

from notify.urls import check_public_url
from sources.connectors.base import Globs, Item, ItemFailed, Known, Limits, SourceError, SourceUnreachable, under_roots

ALLOW_PRIVATE = "SNAPDEX_SOURCE_ALLOW_PRIVATE"
HEAD_REF = "refs/snapdex/head"
FETCH_TIMEOUT_FACTOR = 20  # a fetch may take this many times SNAPDEX_SOURCE_TIMEOUT_S
_UNREACHABLE = re.compile(r"could not resolve host|failed to connect|connection (refused|timed out|reset)|"
                          r"timed out|unable to access|does not appear to be a git repository|"
                          r"could not read from remote", re.I)


class GitConfig(Globs):
    SECRETS: ClassVar[tuple[str, ...]] = ("token",)

    url: str = Field(min_length=1, max_length=2048, description=(
        "an https:// repository URL, or a local repository under SNAPDEX_SOURCE_FOLDER_ROOTS"))
    branch: str = Field(default="main", min_length=1, max_length=255)
    username: str = Field(default="x-access-token", min_length=1, max_length=256,
                          description="sent with the token (HTTP basic authentication)")
    token: str | None = Field(default=None, min_length=1, max_length=4096, description="sealed at rest, never shown")


def _local(url: str) -> str | None:
    """The path of a local repository (a path, or a file:// URL), None for a remote one."""
    if url.startswith("file://"):
        return unquote(urlsplit(url).path)
    return url if url.startswith("/") else None


def check(config: GitConfig, limits: Limits) -> None:
    local = _local(config.url)
    if local is not None:
        under_roots(local, limits.folder_roots, "git")
    else:
        parts = urlsplit(config.url)
        if parts.scheme not in ("http", "https"):
            raise SourceError(f"git url {config.url!r}: only https:// (or http://) URLs and local repositories under "
                              "SNAPDEX_SOURCE_FOLDER_ROOTS are allowed (no ssh, git:// or ext:: transports)")
        if parts.username or parts.password:
            raise SourceError("git url must not carry credentials (user:password@): give them as username and token, "
                              "which are sealed at rest")
        try:
            check_public_url(config.url, limits.allow_private, "git url", ALLOW_PRIVATE)
        except ValueError as e:
            raise SourceError(str(e)) from e
    ok = subprocess.run(["git", "check-ref-format", "--branch", config.branch], capture_output=True, timeout=30)
    if ok.returncode != 0 or config.branch.startswith("-"):
        raise SourceError(f"git branch {config.branch!r} is not a valid branch name")


class GitSession:
    def __init__(self, config: GitConfig, limits: Limits, source_id: str) -> None:
        check(config, limits)  # again: the roots, DNS or links may differ now
        self.config, self.limits = config, limits
        self.incomplete: list[str] = []
        self.mirror = limits.data_dir / "sources" / f"{source_id}.git"
        local = _local(config.url)
        self.remote = str(under_roots(local, limits.folder_roots, "git")) if local is not None else config.url
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.mirror), "LC_ALL": "C",
                    "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
                    "GIT_ALLOW_PROTOCOL": "file" if local is not None else "http:https"}
        if config.token is not None:
            basic = base64.b64encode(f"{config.username}:{config.token}".encode()).decode()
            self.env.update(GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="http.extraHeader",
                            GIT_CONFIG_VALUE_0=f"Authorization: Basic {basic}")
        self.commit, self.committed_at = "", None
        self._reader: subprocess.Popen | None = None

    def _git(self, *args: str, timeout: float | None = None, what: str = "git") -> bytes:
        try:
            done = subprocess.run(["git", "-C", str(self.mirror), *args], env=self.env, capture_output=True,
                                  timeout=timeout or self.limits.timeout_s * FETCH_TIMEOUT_FACTOR)
        except subprocess.TimeoutExpired as e:
            raise SourceUnreachable(f"{what} took longer than {e.timeout:.0f} s") from e
        if done.returncode != 0:
            err = done.stderr.decode("utf-8", "replace").strip().splitlines()
            message = "; ".join(line for line in err if line and not line.startswith("hint:"))[:500]
            if "couldn't find remote ref" in message or "not our ref" in message:
                raise SourceError(f"branch {self.config.branch!r} is not in {self.config.url}")
            kind = SourceUnreachable if _UNREACHABLE.search(message) else SourceError
            raise kind(f"{what} failed: {message or f'exit status {done.returncode}'}")
        return done.stdout

    def _fetch(self) -> None:
        if not (self.mirror / "HEAD").exists():
            self.mirror.mkdir(parents=True, exist_ok=True)
            self._git("init", "--bare", "--quiet", what="git init")
        self._git("-c", "http.followRedirects=false", "-c", "http.lowSpeedLimit=1000",
                  "-c", f"http.lowSpeedTime={int(self.limits.timeout_s)}", "fetch", "--quiet", "--no-tags",
                  "--depth=1", "--force", "--", self.remote, f"+refs/heads/{self.config.branch}:{HEAD_REF}",
                  what=f"fetching {self.config.branch} of {self.config.url}")
        head = self._git("log", "-1", "--format=%H %ct", HEAD_REF, what="git log").decode().split()
        self.commit, self.committed_at = head[0], float(head[1])

    def list(self, known: dict[str, Known]) -> Iterator[Item]:
        self._fetch()
        tree = self._git("ls-tree", "-r", "-l", "-z", "--full-tree", HEAD_REF, what="git ls-tree")
        count = 0
        for entry in tree.split(b"\0"):
            if not entry:
                continue
            meta, _, raw_path = entry.partition(b"\t")
            mode, kind, blob, size = meta.split()
            if kind != b"blob" or mode not in (b"100644", b"100755"):
                continue  # submodules, symbolic links
            path = raw_path.decode("utf-8", "backslashreplace")
            if not self.config.wants(path):
                continue
            count += 1
            if count > self.limits.max_items:
                raise SourceError(f"{self.config.url} ({self.config.branch}) holds more than {self.limits.max_items} "
                                  "files (SNAPDEX_SOURCE_MAX_ITEMS): narrow it with include/exclude")
            yield Item(path, f"{self.config.url}#{self.config.branch}:{path}", path, version=blob.decode(),
                       size=int(size), modified=self.committed_at, metadata={"git_commit": self.commit},
                       locator=blob.decode())

    def read(self, item: Item) -> bytes:
        if item.size is not None and item.size > self.limits.max_item_bytes:
            raise ItemFailed(f"{item.key} is larger than {self.limits.max_item_bytes} bytes (SNAPDEX_MAX_UPLOAD_BYTES)")
        reader = self._batch()
        reader.stdin.write(f"{item.locator}\n".encode())
        reader.stdin.flush()
        header = reader.stdout.readline().split()
        if len(header) != 3 or header[1] != b"blob":
            raise ItemFailed(f"{item.key}: blob {item.locator} is missing from the fetched commit")
        data = reader.stdout.read(int(header[2]))
        reader.stdout.read(1)  # the newline after each object
        return data

    def _batch(self) -> subprocess.Popen:
        """One `git cat-file --batch` for the whole sync: a process per file would cost more than the read."""
        if self._reader is None:
            self._reader = subprocess.Popen(["git", "-C", str(self.mirror), "cat-file", "--batch"], env=self.env,
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        return self._reader

    def close(self) -> None:
        if self._reader is not None:
            self._reader.stdin.close()
            try:
                self._reader.wait(10)
            except subprocess.TimeoutExpired:
                self._reader.kill()
            self._reader = None


def forget(data_dir: Path, source_id: str) -> None:
    """Drop a deleted source's copy of its repository."""
    shutil.rmtree(data_dir / "sources" / f"{source_id}.git", ignore_errors=True)
