"""`web`: pages of a website under a URL prefix, found from a start URL (following links) and/or a sitemap.

A crawl never leaves the prefix: a link outside it is not followed, and a redirect out of it ends at the redirect
(the page is left out). It obeys robots.txt (its rules for the user agent `snapdex`, and Crawl-delay up to
MAX_CRAWL_DELAY_S), stops at `max_depth` links from the start and at `max_pages` pages, and reads a page the last
sync read with a conditional GET (If-None-Match / If-Modified-Since): a 304 costs no body, and the page's links are
taken from what the last sync saw. Every request, each redirect hop included, is checked as webhook URLs are: a host
resolving to a private address is refused unless SNAPDEX_SOURCE_ALLOW_PRIVATE. HTML, plain text, Markdown and PDF
are read; other types are not part of the source.

A page that answers 404 or 410 is gone (its document is deleted); any other error status makes it a failed item
(kept, read again next time). A connection that fails, or a robots.txt that answers 5xx, fails the whole sync:
nothing is deleted on the word of a site that is down.
"""

from __future__ import annotations

import email.utils
import tempfile
import time
import urllib.robotparser
from collections import deque
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator
from urllib.parse import urldefrag, urljoin, urlsplit

import httpx
from pydantic import Field, model_validator

from notify.urls import check_public_url
from sources.connectors.base import (Item, ItemFailed, Known, Limits, SourceError, SourceUnreachable, StrictConfig,
                                     sha256)

ALLOW_PRIVATE = "SNAPDEX_SOURCE_ALLOW_PRIVATE"
USER_AGENT = "snapdex"  # what robots.txt rules are matched against
UA_HEADER = "snapdex-sources/1 (+robots.txt obeyed)"
MAX_REDIRECTS = 5
MAX_CRAWL_DELAY_S = 10.0
MAX_SITEMAPS = 50  # sitemaps read from one sitemap index, nested ones included
TYPES = {"text/html": ".html", "application/xhtml+xml": ".html", "text/plain": ".txt", "text/markdown": ".md",
         "text/x-markdown": ".md", "application/pdf": ".pdf"}


class WebConfig(StrictConfig):
    url: str | None = Field(default=None, max_length=2048, description="where the crawl starts")
    sitemap: str | None = Field(default=None, max_length=2048, description="a sitemap (or sitemap index) to read "
                                                                           "pages from; it may lie outside the prefix")
    prefix: str | None = Field(default=None, max_length=2048, description=(
        "the URL prefix pages must start with; default: the start URL (or the sitemap) up to its last /"))
    max_depth: int = Field(default=3, ge=0, le=50, description="links followed from the start URL")
    max_pages: int = Field(default=1000, ge=1, le=10_000_000, description="capped by SNAPDEX_SOURCE_MAX_ITEMS")

    @model_validator(mode="after")
    def _somewhere(self) -> "WebConfig":
        if self.url is None and self.sitemap is None:
            raise ValueError("give url (where the crawl starts), sitemap, or both")
        return self

    @property
    def scope(self) -> str:
        base = self.prefix or (self.url or self.sitemap)
        return base if self.prefix else base[: base.rfind("/") + 1]


def check(config: WebConfig, limits: Limits) -> None:
    for name in ("url", "sitemap", "prefix"):
        value = getattr(config, name)
        if value is None:
            continue
        parts = urlsplit(value)
        if parts.username or parts.password:
            raise SourceError(f"web {name} must not carry credentials (user:password@)")
        try:
            check_public_url(value, limits.allow_private, f"web {name}", ALLOW_PRIVATE)
        except ValueError as e:
            raise SourceError(str(e)) from e
    if config.url is not None and not _normal(config.url).startswith(config.scope):
        raise SourceError(f"web url {config.url!r} is outside the prefix {config.scope!r}")


def _normal(url: str) -> str:
    """A page's key: the URL without its fragment."""
    return urldefrag(url)[0]


@dataclass
class _Answer:
    url: str
    status: int
    headers: httpx.Headers
    body: bytes


class _Off(Exception):
    """A redirect left the prefix, or pointed at an address that is not allowed: the page is not part of the source."""


class WebSession:
    def __init__(self, config: WebConfig, limits: Limits) -> None:
        check(config, limits)
        self.config, self.limits = config, limits
        self.scope = config.scope
        self.incomplete: list[str] = []
        self.client = httpx.Client(timeout=httpx.Timeout(limits.timeout_s, connect=min(10.0, limits.timeout_s)),
                                   follow_redirects=False, headers={"User-Agent": UA_HEADER})
        self.spool = tempfile.TemporaryDirectory(prefix="snapdex-web-")
        self.robots: dict[str, urllib.robotparser.RobotFileParser] = {}
        self.delay, self.last_request = 0.0, 0.0
        self.requests = self.not_modified = 0  # for the bench and the tests: conditional GETs that saved a body

    # --- guarded requests ----------------------------------------------------------------------------------

    def _get(self, url: str, headers: dict | None = None, inside: bool = True) -> _Answer:
        """GET, following up to MAX_REDIRECTS redirects by hand: each hop is checked (an allowed address; inside
        the prefix when `inside`). SourceUnreachable when the site does not answer."""
        for _ in range(MAX_REDIRECTS + 1):
            try:
                check_public_url(url, self.limits.allow_private, "web page", ALLOW_PRIVATE)
            except ValueError as e:
                raise _Off(str(e)) from e
            if self.delay:
                time.sleep(max(0.0, self.last_request + self.delay - time.monotonic()))
            self.last_request = time.monotonic()
            self.requests += 1
            try:
                with self.client.stream("GET", url, headers=headers) as r:
                    if r.is_redirect and "location" in r.headers:
                        target = _normal(urljoin(url, r.headers["location"]))
                        if inside and not target.startswith(self.scope):
                            raise _Off(f"{url} redirects to {target}, outside the prefix {self.scope}")
                        url, headers = target, None  # a conditional header was about the first URL
                        continue
                    body = b""
                    if r.status_code == 200:
                        chunks, size = [], 0
                        for chunk in r.iter_bytes():
                            size += len(chunk)
                            if size > self.limits.max_item_bytes:
                                raise ItemFailed(f"{url} is larger than {self.limits.max_item_bytes} bytes "
                                                 "(SNAPDEX_MAX_UPLOAD_BYTES)")
                            chunks.append(chunk)
                        body = b"".join(chunks)
                    return _Answer(url, r.status_code, r.headers, body)
            except httpx.TransportError as e:
                raise SourceUnreachable(f"{url} did not answer: {type(e).__name__}: {e}") from e
        raise _Off(f"{url}: more than {MAX_REDIRECTS} redirects")

    def _allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        robots = self.robots.get(origin)
        if robots is None:
            robots = self.robots[origin] = self._robots(origin)
            self.delay = min(MAX_CRAWL_DELAY_S, float(robots.crawl_delay(USER_AGENT) or 0))
        return robots.can_fetch(USER_AGENT, url)

    def _robots(self, origin: str) -> urllib.robotparser.RobotFileParser:
        parser = urllib.robotparser.RobotFileParser(origin + "/robots.txt")
        try:
            answer = self._get(origin + "/robots.txt", inside=False)
        except (_Off, ItemFailed):
            answer = None
        if answer is None or 400 <= answer.status < 500:
            parser.parse([])  # none (RFC 9309: a 4xx means no rules)
        elif answer.status >= 500:
            raise SourceUnreachable(f"{origin}/robots.txt answered HTTP {answer.status}: the site is treated as down")
        else:
            parser.parse(answer.body.decode("utf-8", "replace").splitlines())
        return parser

    # --- the crawl -----------------------------------------------------------------------------------------

    def _sitemap_urls(self) -> list[str]:
        from defusedxml import ElementTree

        found, queue, read = [], deque([self.config.sitemap]), 0
        while queue and read < MAX_SITEMAPS:
            url = queue.popleft()
            read += 1
            try:
                answer = self._get(url, inside=False)
            except _Off as e:
                raise SourceError(f"sitemap {url}: {e}") from e
            if answer.status != 200:
                raise SourceError(f"sitemap {url} answered HTTP {answer.status}")
            try:
                root = ElementTree.fromstring(answer.body)
            except Exception as e:  # malformed XML, or entities defusedxml refuses
                raise SourceError(f"sitemap {url} is not a sitemap: {type(e).__name__}: {e}") from e
            index = root.tag.endswith("sitemapindex")
            for loc in root.iter():
                if loc.tag.endswith("loc") and loc.text and loc.text.strip():
                    (queue if index else found).append(loc.text.strip())
        return found

    def list(self, known: dict[str, Known]) -> Iterator[Item]:
        limit = min(self.config.max_pages, self.limits.max_items)
        queue: deque[tuple[str, int]] = deque()
        if self.config.url:
            queue.append((self.config.url, 0))
        if self.config.sitemap:
            queue.extend((u, 0) for u in self._sitemap_urls())
        seen: set[str] = set()
        listed = 0
        while queue and listed < limit:
            url, depth = queue.popleft()
            key = _normal(url)
            if key in seen or not key.startswith(self.scope) or urlsplit(key).scheme not in ("http", "https"):
                continue
            seen.add(key)
            if not self._allowed(key):
                continue
            item = self._page(key, known.get(key))
            if item is None:
                continue
            if item.key != key:  # redirected inside the prefix: the page is its final URL
                if item.key in seen:
                    continue
                seen.add(item.key)
            listed += 1
            yield item
            if depth < self.config.max_depth:
                queue.extend((link, depth + 1) for link in item.extra.get("links", []))

    def _page(self, url: str, last: Known | None) -> Item | None:
        headers = {}
        if last is not None:
            if last.extra.get("etag"):
                headers["If-None-Match"] = last.extra["etag"]
            if last.extra.get("last_modified"):
                headers["If-Modified-Since"] = last.extra["last_modified"]
        try:
            answer = self._get(url, headers)
        except _Off:
            return None
        except ItemFailed as e:
            return Item(url, url, _filename(url, ".html"), error=str(e), extra=dict(last.extra) if last else {})
        if answer.status == 304 and last is not None:
            self.not_modified += 1
            return Item(answer.url, answer.url, _filename(answer.url, last.extra.get("suffix", ".html")),
                        version=last.version, extra=dict(last.extra))
        if answer.status in (404, 410):
            return None
        if answer.status != 200:
            return Item(answer.url, answer.url, _filename(answer.url, ".html"), error=f"HTTP {answer.status}",
                        extra=dict(last.extra) if last else {})
        media = answer.headers.get("content-type", "").split(";")[0].strip().lower()
        suffix = TYPES.get(media)
        if suffix is None:
            return None  # not a type the service reads
        modified = answer.headers.get("last-modified")
        extra = {"etag": answer.headers.get("etag"), "last_modified": modified, "suffix": suffix,
                 "links": _links(answer.body, answer.url, self.scope) if suffix == ".html" else []}
        spooled = Path(self.spool.name) / sha256(answer.url.encode())
        spooled.write_bytes(answer.body)  # the bodies wait on disk, not in memory, until they are staged
        when = email.utils.parsedate_to_datetime(modified).timestamp() if modified and _date(modified) else None
        return Item(answer.url, answer.url, _filename(answer.url, suffix), version=answer.headers.get("etag") or
                    sha256(answer.body), size=len(answer.body), modified=when, extra=extra, locator=spooled)

    def read(self, item: Item) -> bytes:
        if item.locator is not None:
            return Path(item.locator).read_bytes()
        # A 304 said the page is as the last sync read it; it is read whole only when the sync needs its bytes
        # (its document is gone, or the source's metadata changed).
        answer = self._get(item.key)
        if answer.status != 200:
            raise ItemFailed(f"HTTP {answer.status}")
        return answer.body

    def close(self) -> None:
        self.client.close()
        self.spool.cleanup()


def _date(value: str) -> bool:
    try:
        return email.utils.parsedate_to_datetime(value) is not None
    except (TypeError, ValueError):
        return False


def _filename(url: str, suffix: str) -> str:
    """What the parser is told a page is called: its last path segment, with the suffix of its content type."""
    name = PurePosixPath(urlsplit(url).path).name or "index"
    return name if name.lower().endswith(suffix) or (suffix == ".html" and name.lower().endswith(".htm")) \
        else name + suffix


def _links(body: bytes, base: str, scope: str) -> list[str]:
    """The links of an HTML page inside the prefix, absolute and without fragments, each once."""
    import lxml.html

    try:
        doc = lxml.html.document_fromstring(body, base_url=base)
    except Exception:  # an empty or broken page: no links
        return []
    out: list[str] = []
    for element, attribute, link, _ in doc.iterlinks():
        if element.tag != "a" or attribute != "href" or "nofollow" in (element.get("rel") or ""):
            continue
        url = _normal(urljoin(base, link.strip()))
        if url.startswith(scope) and url not in out:
            out.append(url)
    return out
