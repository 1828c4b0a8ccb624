"""The parse child: the process every document is parsed in (`ingest/parse_process.py` starts and watches it).

    python -P -m ingest.parse_child FD PARENT_PID CONFIG_JSON

It reads requests from the socket FD, parses each with `ingest/formats/` and answers on the same socket, one
document at a time, until its parent closes the socket, it has been idle for `idle_exit_s` seconds, or a document
took its peak resident memory past `recycle_bytes` (Python rarely gives freed memory back): then it exits with
code 0, and the parent starts another one when it next needs it. It loads nothing the parser does not need: torch
and the embedding runtimes are refused (spaCy's thinc imports torch whenever it is installed: ~190 MB and 2 s),
and unstructured with spaCy loads with the first document that needs it, not for plain text.

Messages both ways are `pack`ed: a JSON header and raw byte blobs (the document, the parsed text, attachments), so
the parent decodes what a child that read hostile input sends without unpickling it.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import resource
import select
import signal
import struct
import sys
import traceback
from typing import Any, Sequence

_HEAD = struct.Struct(">I")
# The embedder's stacks: nothing the parser imports needs them (checked by tests/ingest/test_parse_process.py).
REFUSED = ("torch", "onnxruntime", "sentence_transformers", "transformers")
MAX_LOG_RECORDS = 20  # per document: a broken PDF makes pdfminer warn once per object
_PR_SET_PDEATHSIG = 1


def pack(header: dict, blobs: Sequence[bytes] = ()) -> bytes:
    head = json.dumps({**header, "blobs": [len(b) for b in blobs]}).encode()
    return b"".join([_HEAD.pack(len(head)), head, *blobs])


def unpack(message: bytes) -> tuple[dict, list[bytes]]:
    view = memoryview(message)
    (size,) = _HEAD.unpack_from(view)
    at = _HEAD.size + size
    header = json.loads(bytes(view[_HEAD.size:at]))
    blobs = []
    for n in header.pop("blobs"):
        blobs.append(bytes(view[at:at + n]))
        at += n
    if at != len(view):
        raise ValueError(f"message of {len(view)} bytes, {at} accounted for")
    return header, blobs


def encode_document(doc: Any) -> tuple[dict, list[bytes]]:
    """A ParsedDocument as a header and blobs (`decode_document` gives back an equal one)."""
    header = {"format": doc.format, "structured": doc.structured, "title": doc.title, "elements": doc.elements,
              "pages": doc.pages, "metadata": doc.metadata, "attachments": [name for name, _ in doc.attachments]}
    # surrogatepass: whatever a library left in the text crosses unchanged.
    return header, [doc.text.encode("utf-8", "surrogatepass"), *(payload for _, payload in doc.attachments)]


def decode_document(header: dict, blobs: list[bytes]) -> Any:
    from ingest.formats import ParsedDocument

    text, payloads = blobs[0].decode("utf-8", "surrogatepass"), blobs[1:]
    if len(payloads) != len(header["attachments"]):
        raise ValueError("attachment names and payloads differ in number")
    return ParsedDocument(
        text=text, format=header["format"], structured=header["structured"], title=header["title"],
        elements=header["elements"], pages=tuple((start, page) for start, page in header["pages"]),
        metadata=tuple((key, value) for key, value in header["metadata"]),
        attachments=tuple(zip(header["attachments"], payloads)),
    )


class RefuseImports:
    """A meta-path finder that makes `import NAME` (and its submodules) fail as if NAME were not installed, rather
    than sys.modules[NAME] = None: scipy looks torch up in sys.modules."""

    def __init__(self, names: Sequence[str], why: str) -> None:
        self.names, self.why = tuple(names), why

    def find_spec(self, name, path=None, target=None):
        if name.split(".", 1)[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r} ({self.why})", name=name)
        return None


class _Collect(logging.Handler):
    """A document's warnings, sent back with its answer: the parent logs them in its own format."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[list[Any]] = []
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.records) < MAX_LOG_RECORDS:
            self.records.append([record.levelno, record.name, record.getMessage()[:2000]])
        else:
            self.dropped += 1

    def take(self) -> list[list[Any]]:
        out, self.records = self.records, []
        if self.dropped:
            out.append([logging.WARNING, __name__, f"{self.dropped} more warnings of this document not shown"])
            self.dropped = 0
        return out


def _die_with_parent(parent: int) -> None:
    # Killed with the process that started it (kill -9, OOM), instead of looping on as an orphan. The kernel ties
    # this to the parent *thread*: parse_process starts children from a thread that lives as long as its process.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(0)


def rss(pid: int | str = "self") -> int:
    """Resident bytes of a process (Linux /proc)."""
    with open(f"/proc/{pid}/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def inherited_peak() -> int:
    """The peak resident bytes the kernel credits this process with at start: ru_maxrss survives fork and exec, so a
    child started by a 2 GB service begins with a 2 GB "peak" it never used. Only a peak above it is the child's."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def own_peak() -> int:
    """This process's peak resident bytes since it started its program (VmHWM: the high-water mark of the address
    space exec made, which ru_maxrss is not)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _memory_error(e: BaseException | None) -> bool:
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, MemoryError):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False


def main(argv: list[str]) -> int:
    fd, parent, config = int(argv[1]), int(argv[2]), json.loads(argv[3])
    _die_with_parent(parent)
    # Kernel limits, inherited by tesseract: the data limit is the backstop for an allocation faster than the
    # parent's memory watchdog (see parse_process); no core files from a parser that crashes.
    resource.setrlimit(resource.RLIMIT_DATA, (config["data_limit"], config["data_limit"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    sys.meta_path.insert(0, RefuseImports(REFUSED, "the parse child never needs it"))
    collect = _Collect()
    logging.basicConfig(level=logging.WARNING, handlers=[collect])

    from multiprocessing.connection import Connection

    from ingest import formats
    from ingest.formats import unstructured_setup

    conn = Connection(fd)
    load = unstructured_setup.load_unstructured

    def load_reported():
        # Loading unstructured and spaCy (~2 s) is not the document's parsing: the parent stops the document's
        # clock meanwhile, and bounds the load on its own.
        if load.cache_info().currsize:
            return load()
        conn.send_bytes(pack({"event": "loading"}))
        u = load()
        conn.send_bytes(pack({"event": "loaded"}))
        return u

    unstructured_setup.load_unstructured = load_reported
    poller = select.poll()  # once: Connection.poll builds a selector on every call
    poller.register(fd, select.POLLIN)
    conn.send_bytes(pack({"event": "ready", "inherited_peak": inherited_peak()}))
    while True:
        if not poller.poll(int(config["idle_exit_s"] * 1000)):
            return 0  # idle: the parent starts another child when it needs one
        try:
            header, blobs = unpack(conn.recv_bytes())
        except EOFError:
            return 0  # the parent closed the socket
        conn.send_bytes(_answer(formats, header, blobs, collect, config["ocr_languages"]))
        # The peak, not the current size. ru_maxrss (one getrusage call, where /proc costs ~13 us a document) is at
        # least the real peak: only when it passes the bound is the real one (VmHWM) read, since it may be the peak
        # of the service that started this child (`inherited_peak`).
        if inherited_peak() > config["recycle_bytes"] and own_peak() > config["recycle_bytes"]:
            return 0


def _answer(formats: Any, header: dict, blobs: list[bytes], collect: _Collect, ocr_languages: str) -> bytes:
    try:
        op = header["op"]
        if op == "warm":
            formats.warm_up()
            return pack({"ok": True, "rss": rss(), "log": collect.take()})
        if op == "bytes":
            doc = formats.parse_bytes(blobs[0], header["filename"], ocr_languages=ocr_languages)
        elif op == "text":
            doc = formats.parse_text(blobs[0].decode("utf-8"), header["filename"])
        else:
            raise ValueError(f"unknown request {op!r}")
        head, out = encode_document(doc)
        return pack({"ok": True, "document": head, "log": collect.take()}, out)
    except BaseException as e:  # SystemExit from a library too: the child must answer, not leave
        expected = isinstance(e, formats.ParseError)
        return pack({"ok": False, "error": str(e) if expected else f"{type(e).__name__}: {e}",
                     "memory": _memory_error(e), "traceback": None if expected else traceback.format_exc(),
                     "log": collect.take()})


if __name__ == "__main__":
    sys.exit(main(sys.argv))
