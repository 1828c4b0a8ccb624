"""ingest.formats.unstructured_setup: parsing never touches the network: not unstructured's telemetry, not its
spaCy model download, in this process or in a fresh one with the opt-out variables removed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from ingest.formats import parse_bytes, parse_text
from tests.ingest.format_samples import DOCS, HAVE_TESSERACT, REPO, SAMPLES, SCANNED_PDF, needs_samples, read

pytestmark = needs_samples


def test_no_network_during_parsing(monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    for name in sorted(SAMPLES):
        if name != SCANNED_PDF or HAVE_TESSERACT:
            parse_bytes(read(name), name)
    parse_text("# Title\n\nSome text.")
    assert attempts == []


# Runs in a fresh interpreter so the import of unstructured, its telemetry hook and the first
# spaCy use all happen under the guard; the opt-out variables are removed from its environment.
_FRESH_PROCESS = r"""
import json, os, socket, sys
attempts = []
def refuse(*args, **kwargs):
    attempts.append(repr(args)[:200])
    raise OSError("network disabled")
socket.socket.connect = socket.socket.connect_ex = socket.getaddrinfo = refuse
socket.create_connection = refuse
from ingest.formats import parse_bytes
docs = sys.argv[1]
formats = [parse_bytes(open(os.path.join(docs, n), "rb").read(), n).format for n in sys.argv[2:]]
import unstructured.nlp.tokenize as t
print(json.dumps({"attempts": attempts, "formats": formats, "tags": t.pos_tag("It is done.")}))
"""


def test_fresh_process_never_touches_the_network():
    files = ["fake-text.txt", "simple-table.md", "fake-html.html", "fake.docx", "fake-memo.pdf"]
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DO_NOT_TRACK", "SCARF_NO_ANALYTICS", "UNSTRUCTURED_DISABLE_NOTICE")
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS, str(DOCS), *files],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["attempts"] == []
    assert result["formats"] == ["txt", "md", "html", "docx", "pdf"]
    assert ("is", "VB") in [tuple(t) for t in result["tags"]]  # our offline pipeline is in use
    assert "Thank you for using Unstructured" not in proc.stderr + proc.stdout
