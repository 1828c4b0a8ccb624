"""Access lists and readers as the keyword tokens Qdrant filters on (ingest/access.py)."""

from __future__ import annotations

import pytest

from ingest.filters import request_filter
from ingest.access import NO_ONE, Reader, document_tokens, normalize_access, visible_payload
from store.filters import Condition, Filter


def test_lists_are_normalised_and_checked():
    assert normalize_access(None) is None
    assert normalize_access({"users": ["b", "a", "b"]}) == {"users": ["a", "b"], "groups": []}
    for bad in ({"user": ["a"]}, {"users": "a"}, {"groups": [""]}, {"groups": ["x" * 257]}, ["a"]):
        with pytest.raises(ValueError):
            normalize_access(bad)


def test_tokens_of_documents_and_readers_meet_where_access_is_granted():
    assert document_tokens(None) == ["*"]
    assert document_tokens({"users": [], "groups": []}) == []
    doc = document_tokens({"users": ["alice"], "groups": ["hr"]})
    assert Reader.of("alice", [], True).sees(doc) and Reader.of("bob", ["hr"], True).sees(doc)
    assert not Reader.of("bob", ["eng"], True).sees(doc)
    # Deny by default: a document without a list is not the reader's unless named.
    assert Reader.of("bob", [], True).sees(["*"]) and not Reader.of("bob", [], False).sees(["*"])
    # A user "g:x" is not the group x: the prefixes keep the two apart.
    assert not Reader.of("g:hr", [], False).sees(document_tokens({"users": [], "groups": ["hr"]}))


def test_the_access_condition_is_anded_and_cannot_be_overridden():
    reader = Reader.of("alice", ["hr"], True)
    tokens = Condition("any", "access", ["*", "g:hr", "u:alice"])
    assert request_filter(None, reader) == Filter(must=(tokens,))
    assert request_filter({"metadata.team": "x"}, None) == Filter(must=(Condition("match", "metadata.team", "x"),))
    # The reader's tokens narrow every filter, and the request's own conditions meet them on one readable source.
    narrowed = request_filter({"doc_id": "d1"}, reader)
    assert narrowed.must[0] == tokens and narrowed.must[-1].key == "sources"
    assert tokens in narrowed.must[-1].filter.must
    for key in ("access", "access.x", "sources[].access"):
        with pytest.raises(ValueError, match="not a filterable field"):
            request_filter({key: "*"}, reader)
    assert request_filter(None, Reader.of(None, [], False)) == Filter(must=(Condition("any", "access", [NO_ONE]),))


def test_a_shared_chunk_names_only_the_sources_its_reader_may_read():
    payload = {"doc_ids": ["open", "secret"], "metadata": {"team": ["a", "b"]},
               "sources": [{"doc_id": "open", "access": ["*"], "metadata": {"team": "a"}},
                           {"doc_id": "secret", "access": ["g:board"], "metadata": {"team": "b"}}]}
    seen = visible_payload(payload, Reader.of("bob", [], True))
    assert seen["doc_ids"] == ["open"] and [s["doc_id"] for s in seen["sources"]] == ["open"]
    assert seen["metadata"] == {"team": ["a"]}
    assert visible_payload(payload, None) is payload
    assert visible_payload(payload, Reader.of("carol", ["board"], True)) is payload


def test_a_hit_names_only_the_near_duplicate_twins_its_reader_may_read():
    """Twins (issue 19) are other documents: their ids are shown to a reader who may read them, and no other."""
    payload = {"doc_ids": ["v2"], "metadata": {"team": ["a"]},
               "sources": [{"doc_id": "v2", "access": ["*"], "twins": ["v1", "draft"],
                            "twin_access": [["*"], ["u:carol"]]}]}
    seen = visible_payload(payload, Reader.of("bob", [], True))
    assert seen["sources"][0]["twins"] == ["v1"] and seen["sources"][0]["twin_access"] == [["*"]]
    assert seen["doc_ids"] == ["v2"] and seen["metadata"] == {"team": ["a"]}  # its own document stands
    assert visible_payload(payload, Reader.of("carol", [], True)) is payload
    assert visible_payload(payload, None) is payload


def test_a_changed_list_rewrites_a_points_sources_twins_and_union():
    from ingest.access import reassigned

    payload = {"access": ["*", "u:carol"], "doc_ids": ["open", "secret"],
               "sources": [{"doc_id": "open", "access": ["*"], "twins": ["secret"], "twin_access": [["u:carol"]]},
                           {"doc_id": "secret", "access": ["u:carol"]}]}
    fields = reassigned(payload, {"secret": {"users": ["erin"], "groups": ["hr"]}})
    assert fields["access"] == ["*", "g:hr", "u:erin"]
    assert fields["sources"][0]["twin_access"] == [["u:erin", "g:hr"]] and fields["sources"][0]["access"] == ["*"]
    assert fields["sources"][1]["access"] == ["u:erin", "g:hr"]
    assert reassigned({**payload, **fields}, {"secret": {"users": ["erin"], "groups": ["hr"]}}) is None  # already so
    assert reassigned(payload, {"elsewhere": None}) is None
    # Built before access lists: no principal's filter matches it, and none is made to.
    assert reassigned({"doc_ids": ["secret"], "sources": [{"doc_id": "secret"}]}, {"secret": None}) is None
