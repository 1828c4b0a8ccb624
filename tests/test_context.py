"""Chunk offsets, context blocks and highlights, in one process over the real ingest path (fake embedder)."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from index_snapshots.builder import point_id
from ingest.jobs import NewDocument
from ingest.windows import sentence_spans
from retrieval.context import ContextConfig, _Builder, build_context, token_counter, window_ends
from harness.helpers import ingest, make_runtime, text_doc


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    runtime = make_runtime(tmp_path_factory.mktemp("context"))
    yield runtime
    runtime.close()


def _points(rt, tenant):
    live = rt.manifest.live(tenant)
    records, offset = [], None
    while True:
        page, offset = rt.store.scroll(live.collection, limit=512, offset=offset)
        records += page
        if offset is None:
            return live, records


def test_offsets_are_exact_on_every_shared_document_format(rt, documents_dir):
    files = sorted(p for p in documents_dir.iterdir())
    job = ingest(rt, [NewDocument(p.name, p.read_bytes(), {}, p.name) for p in files], tenant="formats")
    assert job.counts["failed"] == 0, job
    _, records = _points(rt, "formats")
    docs = {d.doc_id: d for d in rt.catalog.documents("formats")}
    seen = set()
    for r in records:
        for s in r.payload["sources"]:
            doc = docs[s["doc_id"]]
            # Every source of a chunk: the same content, so the exact text of the first, the chunk's for all
            # whose stored text is the same.
            assert doc.text[s["start"]:s["end"]] == r.payload["text"], (s["doc_id"], s["start"])
            seen.add(s["doc_id"])
            if s["doc_id"].endswith(".pdf"):
                assert s["pages"] and all(p >= 1 for p in s["pages"]), s
            if doc.structured:
                assert s["headings"], s
    assert seen == {d.doc_id for d in docs.values() if d.status == "indexed" and d.duplicate_of is None} - set()
    assert any(len(d.spans()) > 1 for d in docs.values())
    # A two-page PDF: its chunks cite both pages between them.
    pages = {p for r in records for s in r.payload["sources"] if s["doc_id"] == "list-item-example.pdf"
             for p in s["pages"]}
    assert pages == {1, 2}


def test_hits_and_context_over_a_search(rt):
    story = " ".join(f"Chapter {i} tells how the miller number {i} ground flour{i % 7} for the village." for i in range(80))
    manual = "# Manual\n\n## Install\n\n" + " ".join(f"Step {i}: unpack crate{i} and bolt panel{i}." for i in range(40)) \
        + "\n\n## Support\n\n" + " ".join(f"Call desk{i} about warranty{i}." for i in range(40))
    ingest(rt, [text_doc("story", story, title="Story"), text_doc("manual", manual)], tenant="ctx")
    docs = {d.doc_id: d for d in rt.catalog.documents("ctx")}
    answer = rt.searcher.search("ctx", "miller number 40 ground flour", 6,
                                context=ContextConfig(300, 1, 2), highlights=True, rerank="late-interaction")
    for h in answer.hits:
        s = h.payload["sources"][0]
        assert docs[s["doc_id"]].text[s["start"]:s["end"]] == h.text
        for a, b, _ in h.highlights:
            assert 0 <= a < b <= len(h.text)
    assert any(h.highlights for h in answer.hits)
    # The late-interaction stage's own window scores: the best highlight scores what ranked the hit.
    for h in answer.hits:
        if h.highlights and h.scores.get("windows") is not None:
            assert max(s for _, _, s in h.highlights) == pytest.approx(h.scores["windows"], abs=1e-4)
    block = answer.context
    assert block.tokens == sum(p.tokens for p in block.passages) <= 300
    assert [p.citation for p in block.passages] == [f"[{i}]" for i in range(1, len(block.passages) + 1)]
    for p in block.passages:
        assert docs[p.doc_id].text[p.start:p.end] == p.text
        assert all(p.start <= a < b <= p.end for a, b, _ in p.highlights)
    assert len([p for p in block.passages if p.doc_id == "story"]) <= 2
    # Section expansion on the manual stays inside its heading section.
    section = rt.searcher.search("ctx", "unpack crate12 and bolt panel12", 3, context=ContextConfig(2000, "section"))
    first = section.context.passages[0]
    assert first.doc_id == "manual" and first.headings == ["Manual", "Install"]
    assert "warranty" not in first.text and "Step 0" in first.text
    # Absent context: the same hits as before, no block.
    plain = rt.searcher.search("ctx", "miller number 40 ground flour", 6, rerank="late-interaction")
    assert plain.context is None and [h.id for h in plain.hits] == [h.id for h in answer.hits]


WORDS = "river stone cloud maple copper lantern violet harbor falcon meadow quartz ember".split()


@pytest.fixture(scope="module")
def corpora(rt):
    """Three random corpora (seeded), each a tenant: prose and heading-structured documents of 1 to ~60 sentences."""
    out = []
    for seed in (16, 17, 18):
        rng = random.Random(seed)
        docs = []
        for d in range(rng.randint(2, 7)):
            sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 16))).capitalize() + "."
                         for _ in range(rng.randint(1, 60))]
            text = " ".join(sentences) if rng.random() < 0.5 else "# Doc\n\n" + "\n\n## Part\n\n".join(
                " ".join(sentences[i:i + rng.randint(2, 9)]) for i in range(0, len(sentences), 7))
            docs.append(text_doc(f"d{d}", text))
        tenant = f"prop{seed}"
        ingest(rt, docs, tenant=tenant)
        out.append((tenant, {d.doc_id: d.text for d in rt.catalog.documents(tenant)}, rt.manifest.live(tenant)))
    return out


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.integers(0, 2), words=st.lists(st.sampled_from(WORDS), min_size=1, max_size=4),
       top_k=st.integers(1, 15), budget=st.integers(1, 1500), expand=st.sampled_from([0, 1, 2, 3, "section"]),
       per_document=st.sampled_from([None, 1, 2]), tokenizer=st.sampled_from([None, "cl100k_base"]))
def test_budget_is_never_exceeded_and_expansion_stays_in_its_document(rt, corpora, which, words, top_k, budget,
                                                                      expand, per_document, tokenizer):
    tenant, stored, live = corpora[which]
    counter = token_counter(tokenizer, rt.embedder)
    answer = rt.searcher.search(tenant, " ".join(words), top_k, highlights=True)
    config = ContextConfig(budget, expand, per_document, tokenizer)
    block = build_context(answer.hits, rt.store, live.collection, counter, config, point_id, sentence_spans)
    assert block.tokens == sum(p.tokens for p in block.passages) <= budget
    for p in block.passages:
        assert counter.count([p.text])[0] == p.tokens
        assert stored[p.doc_id][p.start:p.end] == p.text  # one document's text, exactly: never crossed
        assert all(p.start <= a < b <= p.end for a, b, _ in p.highlights)
    spans = sorted((p.doc_id, p.start, p.end) for p in block.passages)
    for a, b in zip(spans, spans[1:]):
        assert a[0] != b[0] or a[2] <= b[1], "two passages of a document overlap"
    if per_document:
        assert all(sum(p.doc_id == d for p in block.passages) <= per_document for d in stored)


PUNCTUATED = WORDS + ["Ünïcödé", "(brackets)", "[1]", "3.5%", "don't", "x-ray", "日本語", "—"]


@pytest.mark.parametrize("tokenizer", [None, "cl100k_base", "o200k_base"])
def test_a_cut_is_the_longest_prefix_of_whole_sentences_within_the_budget(rt, tokenizer):
    """The cut reads every prefix's count from one pass of the tokenizer; it must be what counting each candidate
    prefix whole finds: the longest run of whole sentences within the budget, else of whole words, else nothing."""
    counter = token_counter(tokenizer, rt.embedder)
    count = lambda t: counter.count([t])[0]  # noqa: E731
    rng = random.Random(20)
    for _ in range(80):
        text = " ".join(" ".join(rng.choice(PUNCTUATED) for _ in range(rng.randint(2, 30))).capitalize() + "."
                        for _ in range(rng.randint(1, 8)))
        budget = rng.randint(1, count(text) + 2)
        builder = _Builder(rt.store, "unused", counter, ContextConfig(budget), point_id, sentence_spans)
        cut = builder._cut(text, budget)
        sentences = [b for _, b in sentence_spans(text) if count(text[:b]) <= budget]
        words = [m.end() for m in re.finditer(r"\S+", text) if count(text[:m.end()]) <= budget]
        assert cut == text[:max(sentences or words or [0])]
        assert count(cut) <= budget and builder.count(cut) == count(cut)


def test_window_ends_are_sentence_ends_of_the_chunk(rt, corpora):
    """A cut may end where a chunk's windows say a sentence ends: never inside a word, and only ends the sentence
    splitter finds in the chunk's body."""
    for tenant, _, live in corpora:
        for record in _points(rt, tenant)[1]:
            text, ends = record.payload["text"], window_ends(record.payload, record.payload["text"])
            if not record.payload.get("windows"):
                continue
            body = min(a for a, b in record.payload["windows"] if b > a)
            found = {body + b for _, b in sentence_spans(text[body:])}
            assert ends and ends == sorted(set(ends)) and set(ends) <= found
            assert all(not text[e - 1].isspace() and (e == len(text) or text[e].isspace()) for e in ends)
            assert window_ends(record.payload, text + " ") == []  # another text: the windows are not its own


def test_unknown_tokenizer_and_bad_expansion_are_refused(rt):
    with pytest.raises(ValueError, match="tokenizer 'p50k_base' is not one of"):
        token_counter("p50k_base", rt.embedder)
    with pytest.raises(ValueError, match="neighbors=9"):
        ContextConfig(100, 9)
    assert token_counter("o200k_base", rt.embedder).count(["hello world"]) == [2]


def test_documents_chunked_before_offsets_are_rechunked_by_the_next_build(rt):
    ingest(rt, [text_doc("old", "An old document about brass bells. " * 30)], tenant="legacy")
    before = rt.manifest.live("legacy").hash
    doc = rt.catalog.get_document("legacy", "old")
    with rt.catalog.db.tx() as conn:  # as a release before offsets left it: another chunker, no spans
        rt.catalog.set_chunks(conn, "legacy", "old", doc.chunk_hashes, "0123456789abcdef")
    rt.snapshots.rebuild("legacy")
    doc = rt.catalog.get_document("legacy", "old")
    assert doc.chunk_spans and doc.chunker == rt.chunker_config.fingerprint()
    _, records = _points(rt, "legacy")
    assert all(doc.text[r.payload["sources"][0]["start"]:r.payload["sources"][0]["end"]] == r.payload["text"]
               for r in records)
    assert rt.manifest.live("legacy").hash == before  # same chunks, same snapshot: nothing else changed


def test_an_exact_duplicate_in_other_white_space_is_placed_in_its_own_text(rt):
    text = " ".join(f"Sentence {i} is about the glass tower number {i}." for i in range(40))
    copy = "  " + text.replace(". ", ".\n\n")  # the same normalised content: its chunks are the original's
    ingest(rt, [text_doc("z-original", text), text_doc("a-copy", copy)], tenant="twins")
    answer = rt.searcher.search("twins", "glass tower number 12", 3)
    docs = {d.doc_id: d.text for d in rt.catalog.documents("twins")}
    for h in answer.hits:
        first = h.payload["sources"][0]
        assert first["doc_id"] == h.payload["doc_ids"][0] == "z-original"  # the one holding it verbatim
        assert docs["z-original"][first["start"]:first["end"]] == h.text
        other = next(s for s in h.payload["sources"] if s["doc_id"] == "a-copy")
        assert docs["a-copy"][other["start"]:other["end"]].split() == h.text.split()
