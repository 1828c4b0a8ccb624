"""Access changes reach every built snapshot (index_snapshots/access.py): after a change no snapshot, live, pinned
or rolled back to, answers under the old list, and each point carries what a fresh build would write."""

from __future__ import annotations

import pytest

from index_snapshots.builder import point_id
from ingest.access import Reader
from ingest.jobs import NewDocument
from harness.helpers import ingest, make_runtime, text_doc

T = "default"
LONG = " ".join(f"Clause {i}: the committee reviews quarterly budget line {i} with the finance office." for i in range(30))
DOCS = {
    "open": ("The handbook says offices open at nine and close at six.", None),
    # The same text under another list: one chunk, two sources (the point's access is the union).
    "hr-copy": ("The handbook says offices open at nine and close at six.", {"users": [], "groups": ["hr"]}),
    "secret": (LONG, {"users": ["carol"], "groups": []}),
    # A near-duplicate of secret: indexed as its twin, its hits name secret as a twin with secret's tokens.
    "secret-v2": (LONG + " Clause 99: amended.", {"users": ["dave"], "groups": []}),
}


def doc(doc_id: str, text: str, access) -> NewDocument:
    return NewDocument(doc_id, text.encode("utf-8"), {}, access=access)


def access_fields(rt, collection: str) -> dict[str, tuple]:
    """point id -> (its access tokens, each source's doc id, tokens and twins' tokens)."""
    out, offset = {}, None
    while True:
        records, offset = rt.store.scroll(collection, limit=256, offset=offset)
        for r in records:
            out[r.id] = (r.payload["access"], [(s["doc_id"], s["access"], s.get("twin_access"))
                                               for s in r.payload["sources"]])
        if offset is None:
            return out


def ids_seen(rt, reader: Reader, query: str, snapshot: str | None = None, use_cache: bool = True):
    answer = rt.searcher.search(T, query, 20, snapshot=snapshot, reader=reader, use_cache=use_cache)
    return {s["doc_id"] for h in answer.hits for s in h.payload["sources"]}, answer.cached


@pytest.fixture
def rt(tmp_path):
    runtime = make_runtime(tmp_path / "a")
    yield runtime
    runtime.close()


def test_a_changed_list_is_written_into_every_snapshot_as_a_fresh_build_writes_it(rt):
    ingest(rt, [doc(d, text, access) for d, (text, access) in DOCS.items()])
    first = rt.manifest.live(T)
    assert rt.catalog.get_document(T, "secret-v2").duplicate_of == "secret"  # the twin this test relies on
    ingest(rt, [text_doc("extra", "A memo about parking spaces behind the building.")])
    second = rt.manifest.live(T)
    assert second.hash != first.hash
    carol = Reader.of("carol", [], True)
    assert "secret" in ids_seen(rt, carol, "committee budget finance", snapshot=first.hash)[0]

    # Revoke carol from secret, open hr-copy to everyone: both snapshots change before apply returns.
    for d, access in (("secret", {"users": ["erin"], "groups": []}), ("hr-copy", None)):
        assert rt.catalog.set_access(T, d, access)
        assert rt.access_sync.apply(T, [d]) > 0
    assert rt.access_sync.apply(T, ["secret", "hr-copy"]) == 0  # idempotent

    # What a build from the catalog as it is now writes for the same chunks (its vectors all come from the cache).
    fresh = rt.snapshots.rebuild(T)
    assert fresh.hash not in (first.hash, second.hash) and fresh.embedded == 0
    want = access_fields(rt, fresh.collection)
    for snap in (first, second):
        got = access_fields(rt, snap.collection)
        assert got and all(got[pid] == want[pid] for pid in got), snap.hash
    secret_point = point_id(rt.catalog.get_document(T, "secret").chunk_hashes[0])
    tokens, sources = want[secret_point]
    assert tokens == ["u:dave", "u:erin"]  # its chunks are secret-v2's too
    twin = next(s for s in access_fields(rt, first.collection).values() if s[1][0][0] == "secret-v2")
    assert twin[1][0][2] == [["u:erin"]]  # secret-v2's hits name its twin with the twin's new tokens

    # Carol reads secret through no snapshot: pinned to the first, or after rolling back to it; erin does.
    for pinned in (first.hash, second.hash, None):
        assert "secret" not in ids_seen(rt, carol, "committee budget finance", snapshot=pinned)[0]
        assert "secret" in ids_seen(rt, Reader.of("erin", [], True), "committee budget finance", snapshot=pinned)[0]
    rt.snapshots.rollback(T)
    assert "secret" not in ids_seen(rt, carol, "committee budget finance")[0]
    assert "hr-copy" in ids_seen(rt, Reader.of("bob", [], True), "offices open at nine")[0]


def test_an_answer_cached_under_the_old_list_is_not_served_again(rt):
    ingest(rt, [doc(d, text, access) for d, (text, access) in DOCS.items()])
    carol = Reader.of("carol", [], True)
    assert ids_seen(rt, carol, "committee budget finance") == ({"secret", "open"}, False)
    assert ids_seen(rt, carol, "committee budget finance")[1]  # cached
    rt.catalog.set_access(T, "secret", {"users": [], "groups": ["board"]})
    rt.access_sync.apply(T, ["secret"])
    seen, cached = ids_seen(rt, carol, "committee budget finance")
    assert seen == {"open"} and not cached


def test_a_change_made_while_a_build_runs_reaches_its_collection(rt, monkeypatch):
    ingest(rt, [doc(d, text, access) for d, (text, access) in DOCS.items()])
    chunks = rt.catalog.chunks
    changed = []

    def change_meanwhile(tenant, hashes):
        # The build has read the documents (with carol on secret's list) and created its collection: now the list
        # changes, and the change is applied while none of its points is written yet.
        if not changed:
            changed.append(rt.catalog.set_access(T, "secret", {"users": ["erin"], "groups": []}))
            rt.access_sync.apply(T, ["secret"])
        return chunks(tenant, hashes)

    monkeypatch.setattr(rt.catalog, "chunks", change_meanwhile)
    rt.catalog.set_access(T, "open", {"users": ["zed"], "groups": []})  # something for a new snapshot to hold
    built = rt.snapshots.rebuild(T)
    assert changed and built.built
    secret_point = point_id(rt.catalog.get_document(T, "secret").chunk_hashes[0])
    assert rt.store.retrieve(built.collection, [secret_point])[0].payload["access"] == ["u:dave", "u:erin"]


def test_an_ingest_that_changes_a_list_rewrites_the_snapshots_holding_the_earlier_version(rt):
    ingest(rt, [doc(d, text, access) for d, (text, access) in DOCS.items()])
    first = rt.manifest.live(T)
    # secret sent again with new text and a list without carol: its old chunks, in the first snapshot, follow.
    ingest(rt, [doc("secret", LONG.replace("quarterly", "monthly"), {"users": ["erin"], "groups": []})])
    assert rt.manifest.live(T).hash != first.hash
    assert "secret" not in ids_seen(rt, Reader.of("carol", [], True), "committee budget finance",
                                    snapshot=first.hash)[0]
    assert "secret" in ids_seen(rt, Reader.of("erin", [], True), "committee budget finance", snapshot=first.hash)[0]
