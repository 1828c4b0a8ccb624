"""A small website on loopback for the sources tests: pages with ETags, a sitemap, a robots.txt, redirects; it
records every request, and can drop connections or hold a page."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness.procs import free_port


class Site:
    """A small website on loopback: pages with ETags (a matching If-None-Match gets a 304), a sitemap, a robots.txt,
    redirects; it records every request, can drop connections (`down`) and hold one page (`hold`)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.pages: dict[str, bytes] = {}
        self.redirects: dict[str, str] = {}
        self.sitemap: list[str] = []
        self.robots = "User-agent: *\nDisallow: /site/private.html\n"
        self.requests: list[tuple[str, int]] = []
        self.down = False
        self.hold: tuple[str, threading.Event, threading.Event] | None = None  # (path, reached, release)
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                path = self.path.split("?")[0]
                if site.hold and path == site.hold[0]:
                    site.hold[1].set()
                    site.hold[2].wait(60)
                if site.down and path.startswith("/site/"):
                    site.requests.append((path, 0))
                    self.close_connection = True
                    return  # no answer at all: the client sees the connection drop
                status, headers, body = site.answer(path, self.headers.get("If-None-Match"))
                site.requests.append((path, status))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, path: str, etag_asked: str | None):
        if path == "/robots.txt":
            return 200, {"Content-Type": "text/plain"}, self.robots.encode()
        if path == "/sitemap.xml":
            urls = "".join(f"<url><loc>{self.base}{p}</loc></url>" for p in self.sitemap)
            return 200, {"Content-Type": "application/xml"}, \
                f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>' \
                .encode()
        if path in self.redirects:
            return 302, {"Location": self.redirects[path]}, b""
        if path in self.pages:
            body = self.pages[path]
            etag = '"' + hashlib.md5(body).hexdigest() + '"'
            if etag_asked == etag:
                return 304, {"ETag": etag}, b""
            return 200, {"Content-Type": "text/html; charset=utf-8", "ETag": etag}, body
        return 404, {"Content-Type": "text/plain"}, b"not found"

    def page(self, name: str, body: str, links: tuple[str, ...] = ()) -> None:
        anchors = "".join(f'<a href="{href}">{href}</a> ' for href in links)
        self.pages[f"/site/{name}.html"] = (f"<html><head><title>{name}</title></head><body><p>{body}</p>"
                                            f"<p>{anchors}</p></body></html>").encode()

    def asked(self, path: str) -> list[int]:
        return [status for p, status in self.requests if p == path]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
