"""Every valid document id is addressable (issue 31): ingested by JSON or as a file name, each is reached by every
document route, through the Python client and by hand-written URLs, including ids that end in a route's suffix;
what is not an id is refused at ingest with 422."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from api.document_paths import routed_path
from snapdex.client import Client, SnapdexError
from harness.procs import snapdex_serve
from wire.operations import id_segment

pytestmark = pytest.mark.slow

# "a" exists too, so that a shadowed id would show as the wrong document rather than a 404.
JSON_IDS = ["a", "a/chunks", "a/access", "a/chunks/chunks", "x%2Fy", "100%", "%", "q?x#y", "sp ace", "ünï/cødé",
            "..", ".", "/lead", "trail/", "tab-free ~tilde+plus&amp;=eq;semi,comma'quote\"dq", "日本語/文書"]
FILE_IDS = ["q?x#y.txt", "sp ace.md", "ünï cødé.txt", "100%.txt"]


def text_of(doc_id: str) -> str:
    return f"The document whose id is {doc_id!r} and no other."


@pytest.fixture(scope="module")
def sx(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ids")
    with snapdex_serve(tmp / "data", SNAPDEX_RATE_LIMIT_INGEST="") as svc:
        client = Client(svc.url)
        job = client.ingest([{"id": i, "text": text_of(i), "metadata": {"n": n}} for n, i in enumerate(JSON_IDS)])
        assert job.status == "succeeded" and not job.failures, job
        paths = []
        for name in FILE_IDS:
            path = tmp / "files" / str(len(paths)) / name
            path.parent.mkdir(parents=True)
            path.write_text(text_of(name))
            paths.append(path)
        job = client.ingest_files(paths)
        assert job.status == "succeeded" and not job.failures, job
        client.svc = svc
        yield client
        client.close()


@pytest.mark.parametrize("doc_id", JSON_IDS + FILE_IDS)
def test_every_route_reaches_the_id_through_the_client(sx, doc_id):
    doc = sx.document(doc_id)
    assert doc.doc_id == doc_id and doc.text == text_of(doc_id)
    chunks = sx.document_chunks(doc_id)
    assert chunks.doc_id == doc_id and "".join(c.text for c in chunks.chunks) == text_of(doc_id)
    changed = sx.set_access(doc_id, {"users": ["carol"]})
    assert changed.doc_id == doc_id and changed.access == {"users": ["carol"], "groups": []}
    assert sx.document(doc_id).access == {"users": ["carol"], "groups": []}
    assert sx.document(doc_id, principal={"user": "carol"}).doc_id == doc_id
    assert doc_id in {d.doc_id for d in sx.iter_documents(principal={"user": "carol"})}
    with pytest.raises(SnapdexError) as hidden:
        sx.document(doc_id, principal={"user": "dan"})
    assert hidden.value.status == 404
    sx.set_access(doc_id, None)
    assert sx.delete_document(doc_id).doc_id == doc_id
    with pytest.raises(SnapdexError) as gone:
        sx.document(doc_id)
    assert gone.value.status == 404


def test_a_literal_suffix_is_the_route_and_an_escaped_slash_is_the_ids(sx):
    http = sx.svc.client
    job = sx.ingest([{"id": i, "text": text_of(i)} for i in ("b", "b/chunks", "b/access", "c/d")])
    assert job.status == "succeeded", job
    assert http.get("/documents/b%2Fchunks").json()["doc_id"] == "b/chunks"
    assert http.get("/documents/b%2fchunks").json()["doc_id"] == "b/chunks"  # either case of the escape
    shadow = http.get("/documents/b/chunks").json()
    assert shadow["doc_id"] == "b" and shadow["chunks"][0]["text"] == text_of("b")  # the chunks route of "b"
    assert http.get("/documents/b%2Fchunks/chunks").json()["chunks"][0]["text"] == text_of("b/chunks")
    assert http.get("/documents/b/chunks/chunks").json()["chunks"][0]["text"] == text_of("b/chunks")
    assert http.get("/documents/b%2Faccess").json()["doc_id"] == "b/access"
    # Plain slashes keep working as before, and so does the escaped form of the same id.
    assert http.get("/documents/c/d").json()["doc_id"] == "c/d" == http.get("/documents/c%2Fd").json()["doc_id"]
    # An access change needs the literal suffix: the id "b/access" alone is no access route.
    assert http.patch("/documents/b%2Faccess", json={"access": None}).status_code == 405
    r = http.patch("/documents/b%2Faccess/access", json={"access": {"users": ["dan"]}})
    assert r.status_code == 202 and r.json()["doc_id"] == "b/access"
    assert http.get("/documents/b").json()["access"] is None  # "b" itself untouched
    assert http.delete("/documents/b%2Fchunks").json()["doc_id"] == "b/chunks"
    assert http.get("/documents/b").status_code == 200 and http.get("/documents/b%2Fchunks").status_code == 404


@pytest.mark.parametrize("bad,why", [("a\r\nb", "U+000D (CARRIAGE RETURN)"), ("nul\x00", "NUL"),
                                     ("   ", "blank"), ("x" * 513, "at most 512"), ("tab\there", "U+0009 (TAB)"),
                                     ("del\x7f", "U+007F"), ("c1\x85", "U+0085")])
def test_what_is_not_an_id_is_refused_at_ingest(sx, bad, why):
    r = sx.svc.client.post("/ingest", json={"documents": [{"id": bad, "text": "text"}]})
    assert r.status_code == 422 and why in r.text, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "documents", 0, "id"]


def test_client_paths_round_trip_every_id():
    """The client's path segment, as the service routes it and the route decodes it, is the id again."""
    from urllib.parse import unquote

    for doc_id in [*JSON_IDS, *FILE_IDS, "a\nb", "50%2F50", "%zz", "é%"]:
        segment = id_segment(doc_id)
        assert "/" not in segment and segment not in (".", "..")
        assert unquote(routed_path(segment)) == doc_id
        assert unquote(routed_path(quote(doc_id))) == doc_id  # slashes left plain: the same id


def test_an_id_stored_before_the_grammar_stays_addressable(tmp_path):
    """A document ingested when ids could hold a line feed (before the grammar) is still read and deleted: the path
    keeps escaped control characters escaped for the router, and the route decodes them."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from harness.helpers import ingest, make_runtime, text_doc

    rt = make_runtime(tmp_path)
    ingest(rt, [text_doc("old\r\nid", "A document from before the id grammar.")])
    with TestClient(create_app(runtime=rt)) as c:
        assert c.get("/documents/old%0D%0Aid").json()["doc_id"] == "old\r\nid"
        assert c.get("/documents/old%0D%0Aid/chunks").json()["chunks"][0]["text"].startswith("A document")
        assert c.patch("/documents/old%0D%0Aid/access", json={"access": {"users": ["eve"]}}).status_code == 202
        assert c.delete("/documents/old%0D%0Aid").status_code == 202
        assert c.get("/documents/old%0D%0Aid").status_code == 404
        assert c.get("/documents/old%00id").status_code == 422  # no id holds a NUL: refused, not looked up
        # Counted under their routes, as every request is.
        metrics = c.get("/metrics").text
        assert 'route="/documents/{doc_id:path}/chunks",status="200"' in metrics
        assert 'method="DELETE",route="/documents/{doc_id:path}",status="202"' in metrics
