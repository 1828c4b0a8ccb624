"""Issue 19 without a server: per-language BM25 analysis and its query side, language detection, tables kept whole
or split by rows with their header, the near-duplicate collapse at pruning, and every format parsed from content."""

from __future__ import annotations

import pytest

from encoders.lexical import LANGUAGES, check_language, query_counts, query_vector, tokenize
from ingest.catalog import DocumentRow
from ingest.chunking import Chunk, Chunker, ChunkerConfig
from ingest.language import detect_language, document_language, query_language_weights
from ingest.formats import ParseError, parse_bytes, parse_text
from index_snapshots.builder import twin_groups
from retrieval.pruning import PruneConfig, prune
from retrieval.types import Candidate
from tests import office_files as files


# --------------------------------------------------------------------------- BM25 analysis


def test_each_language_stems_its_own_inflections():
    assert tokenize("Bücher", "de") == tokenize("Buch", "de") == ["de:buch"]
    assert tokenize("Bücher", "en") != tokenize("Buch", "en")  # what English analysis of German text missed
    assert tokenize("mangeaient", "fr") == tokenize("manger", "fr")
    assert tokenize("manzanas", "es") == tokenize("manzana", "es")
    assert tokenize("der die das und", "de") == []  # German stop words


def test_cjk_runs_become_character_bigrams_in_every_language():
    assert tokenize("図書館", "ja") == ["図書", "書館"]
    assert tokenize("図書館", "en") == ["図書", "書館"]
    assert tokenize("東", "ja") == ["東"]
    assert tokenize("Tokyo東京tower", "ja") == ["東京", "tokyo", "tower"]
    assert tokenize("Tokyo東京", "de") == ["東京", "de:tokyo"]  # bigrams unprefixed, stems of German prefixed


def test_english_analysis_is_unchanged():
    assert tokenize("The Running dogs ran QUICKLY!") == ["run", "dog", "ran", "quick"]
    assert query_counts("cells in cells", ("en",)) == {"cell": 2}


def test_query_side_analyses_in_each_language_of_the_snapshot():
    assert query_counts("Häuser Häuser", ("en", "de")) == {"häuser": 2, "de:haus": 2}
    # A term two analyses share (a CJK bigram) counts once, with its largest count.
    assert query_counts("東京 東京", ("en", "ja", "de")) == {"東京": 2}
    # The English terms of a query are the same whichever other languages are present: English documents score as
    # under English alone (German stems, prefixed, meet German documents only).
    english = dict(zip(*[query_vector("studies of cells").indices, query_vector("studies of cells").values]))
    mixed = query_vector("studies of cells", languages=("de", "en", "es", "fr"))
    assert {i: v for i, v in zip(mixed.indices, mixed.values) if i in english} == english


def test_a_query_weighs_each_language_of_the_snapshot_by_how_likely_it_is_in_it():
    german = query_language_weights("Verzeichnisinhalte auflisten", ("de", "en"))
    assert german["de"] > 0.9 and german["en"] < 0.1
    # ja/ko/zh analyse Latin words as English: they take its weight.
    english = query_language_weights("list directory contents", ("de", "en", "ja"))
    assert english["en"] > 0.9 and english["ja"] == english["en"] and english["de"] < 0.1
    # Where nothing can be told, every analysis at weight 1, as before: one analysis, CJK, no letters.
    assert query_language_weights("Verzeichnisinhalte auflisten", ("de",)) == {"de": 1.0}
    assert query_language_weights("tower", ("en", "ja")) == {"en": 1.0, "ja": 1.0}
    assert query_language_weights("東京 tower", ("en", "de")) == {"en": 1.0, "de": 1.0}
    assert query_language_weights("2019", ("en", "de")) == {"en": 1.0, "de": 1.0}
    # A term counts its weight times its count (a shared one, its largest); a sequence is every language at 1.
    assert query_counts("Häuser Häuser", {"de": 0.75, "en": 0.25}) == {"de:haus": 1.5, "häuser": 0.5}
    assert query_counts("Häuser", {"de": 1.0, "en": 1.0}) == query_counts("Häuser", ("de", "en"))
    weighted = query_vector("Verzeichnisinhalte auflisten", languages=german)
    assert sorted(weighted.values) == pytest.approx(sorted([german["de"]] * 2 + [german["en"]] * 2))


def test_language_codes_are_checked():
    assert check_language("de-AT") == "de" and check_language("PT_br") == "pt"
    with pytest.raises(ValueError, match="klingon.*de"):
        check_language("klingon")
    assert set(LANGUAGES) >= {"de", "en", "es", "fr", "ja", "ko", "zh"}


@pytest.mark.parametrize("text,code", [
    ("Die Schüler lesen in der Bibliothek jeden Tag viele spannende Bücher über Geschichte und Natur.", "de"),
    ("Les enfants mangeaient des pommes rouges dans le jardin de leur grand-mère chaque été.", "fr"),
    ("Los niños comieron manzanas verdes en el jardín de su abuela durante todo el verano.", "es"),
    ("東京都の図書館は毎週月曜日に休館します。", "ja"),
    ("서울의 도서관은 월요일에 쉽니다", "ko"),
    ("北京的图书馆星期一休息", "zh"),
    ("The shepherd dogs were herding sheep across the valley.", "en"),
    ("12 34 56", "en"),  # too little to judge: English
])
def test_detect_language(text, code):
    assert detect_language(text) == code


def test_metadata_language_wins_over_detection():
    assert document_language("The shepherd dogs were herding sheep across the valley.", {"language": "fr"}) == "fr"
    with pytest.raises(ValueError):
        document_language("text", {"language": "xx"})


# --------------------------------------------------------------------------- tables


TABLE_300 = "| id | name | qty |\n|---|---|---|\n" + "\n".join(f"| {i} | item-{i} | {i * 7} |" for i in range(1, 301))


def test_a_table_that_fits_is_one_chunk():
    chunker = Chunker(ChunkerConfig())
    text = "Intro.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n\nOutro."
    assert chunker.split_tables(text) == (text, ())
    chunks = chunker.chunks(text, False)
    assert [(c.text, c.table) for c in chunks] == [
        ("Intro.", None), ("| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |", (1, 1, 2)), ("Outro.", None)]


def test_a_long_table_is_split_by_rows_each_part_with_its_header():
    chunker = Chunker(ChunkerConfig(chunk_size=128, chunk_overlap=16))
    text, pages = chunker.split_tables("# Stock\n\n" + TABLE_300 + "\n\n# After\n\nDone.", ((0, 1), (9, 1)))
    assert pages == ((0, 1), (9, 1))  # before the table: unmoved
    chunks = chunker.chunks(text, True)
    parts = [c for c in chunks if c.table]
    assert len(parts) > 5 and all(c.text.startswith("| id | name | qty |\n|---|---|---|\n") for c in parts)
    assert all(text[c.start:c.end] == c.text for c in chunks)  # the header is in the stored text: offsets exact
    assert [r for c in parts for r in range(c.table[1], c.table[2] + 1)] == list(range(1, 301))
    assert {c.table[0] for c in parts} == {1}
    holder = next(c for c in parts if c.table[1] <= 250 <= c.table[2])
    assert "| 250 | item-250 | 1750 |" in holder.text
    assert Chunk.from_layout(holder.layout()) == Chunk(holder.hash, "", holder.start, holder.end, holder.headings,
                                                       holder.pages, holder.table)


def test_page_starts_after_a_split_table_move_with_the_text():
    chunker = Chunker(ChunkerConfig(chunk_size=64, chunk_overlap=8))
    before = "# Sheet: A\n\n" + TABLE_300 + "\n\n"
    text, pages = chunker.split_tables(before + "# Sheet: B\n\nx", ((0, 1), (len(before), 2)))
    assert text[pages[1][0]:].startswith("# Sheet: B")


# --------------------------------------------------------------------------- near-duplicate twins


def _doc(doc_id, duplicate_of=None):
    return DocumentRow("t", doc_id, "indexed", None, None, None, None, duplicate_of=duplicate_of)


def test_twin_groups_follow_duplicate_of_among_indexed_documents():
    groups = twin_groups([_doc("v1"), _doc("v2", "v1"), _doc("v3", "v2"), _doc("other"), _doc("w2", "gone")])
    assert groups == {"v1": ["v2", "v3"], "v2": ["v1", "v3"], "v3": ["v1", "v2"]}


def _hit(doc_id, text, twins=(), updated_at=0.0, extra_sources=()):
    sources = [{"doc_id": doc_id, "twins": list(twins), "updated_at": updated_at}, *extra_sources]
    return Candidate(id=f"{doc_id}:{text[:8]}", payload={"text": text, "doc_ids": [s["doc_id"] for s in sources],
                                                          "sources": sources}, scores={}, score=1.0)


def test_collapse_keeps_the_newest_twins_hits_and_keep_all_keeps_both():
    def candidates():
        return [_hit("v1", "old clause about travel claims and receipts", ["v2"], 1.0),
                _hit("other", "unrelated text on parking spaces"),
                _hit("v2", "new clause about contractors and digital receipts", ["v1"], 2.0)]

    kept, dropped = prune(candidates(), 10, PruneConfig())
    assert [c.payload["doc_ids"][0] for c in kept] == ["other", "v2"] and dropped == 1
    kept, _ = prune(candidates(), 10, PruneConfig(twins="keep-all"))
    assert [c.payload["doc_ids"][0] for c in kept] == ["v1", "other", "v2"]
    with pytest.raises(ValueError, match="policy"):
        PruneConfig(twins="skip")


def test_twins_sent_in_one_request_are_all_kept_and_one_sent_later_supersedes_them():
    """Which twin is newer is when each was sent (`sent_at`), not the order one request wrote them in: one page
    under two names sent together is two answers; a version sent later still collapses the others."""
    from retrieval.pruning import group_documents

    def candidates(later_sent: float):
        return [_hit("man1/vi", "vi edits text files in a terminal", ["man1/vim"], 5.0),
                _hit("man1/vim", "vim edits text files in a terminal", ["man1/vi"], 9.0),
                _hit("other", "unrelated text on parking spaces")]

    def sent(cands, at: dict):
        for c in cands:
            for src in c.payload["sources"]:
                if src["doc_id"] in at:
                    src["sent_at"] = at[src["doc_id"]]
        return cands

    together = {"man1/vi": 100.0, "man1/vim": 100.0}  # written 4 s apart by one request
    kept, dropped = prune(sent(candidates(0), together), 10, PruneConfig())
    assert [c.payload["doc_ids"][0] for c in kept] == ["man1/vi", "man1/vim", "other"] and dropped == 0
    groups = group_documents(sent(candidates(0), together), 10, PruneConfig())[1]
    assert [g.doc_id for g in groups] == ["man1/vi", "man1/vim", "other"]
    # vi sent again later (a new version): it supersedes vim, though vim was written after it
    later = {"man1/vi": 200.0, "man1/vim": 100.0}
    kept, dropped = prune(sent(candidates(0), later), 10, PruneConfig())
    assert [c.payload["doc_ids"][0] for c in kept] == ["man1/vi", "other"] and dropped == 1
    assert [g.doc_id for g in group_documents(sent(candidates(0), later), 10, PruneConfig())[1]] == \
        ["man1/vi", "other"]
    # a snapshot without sent_at: the order they were written in, as before
    kept, _ = prune(candidates(0), 10, PruneConfig())
    assert [c.payload["doc_ids"][0] for c in kept] == ["man1/vim", "other"]


def test_a_chunk_twins_share_is_the_newest_twins_hit():
    shared = _hit("v1", "a clause both versions hold", ["v2"], 1.0,
                  extra_sources=[{"doc_id": "v2", "twins": ["v1"], "updated_at": 2.0}])
    kept, _ = prune([shared], 10, PruneConfig())
    assert kept[0].payload["doc_ids"][0] == "v2" and kept[0].payload["sources"][0]["twins"] == ["v1"]


# --------------------------------------------------------------------------- formats, by content


@pytest.mark.parametrize("make,fmt,needle", [
    (files.pptx, "pptx", "Speaker notes: Speaker reminder: thank the quokka team."),
    (files.xlsx, "xlsx", "| Item | Cost |"),
    (files.csv_text, "csv", "| Lisbon | Tagus | 545000 |"),
    (files.eml, "eml", "near the aqueduct"),
    (files.msg, "msg", "The audit of the pallet racks starts on Monday in hall seven."),
    (files.epub, "epub", "bowline knot"),
    (files.odt, "odt", "# Greenhouse"),
    (files.rtf, "rtf", "The telescope in the observatory tracks the comet every night."),
])
def test_each_format_is_read_from_its_content(make, fmt, needle):
    parsed = parse_bytes(make(), "misleading-name.txt")
    assert parsed.format == fmt and needle in parsed.text


def test_slides_are_pages_and_mail_headers_metadata():
    deck = parse_bytes(files.pptx())
    assert [p for _, p in deck.pages] == [1, 2, 3] and dict(deck.metadata)["slides"] == 3
    assert deck.text[deck.pages[1][0]:].startswith("# Slide 2")
    mail = parse_bytes(files.eml())
    meta = dict(mail.metadata)
    assert meta["subject"] == "Quarterly offsite in Lisbon" and meta["from"] == "alice@example.com"
    assert meta["to"] == ["bob@example.com", "carol@example.com"] and meta["date"] == "2026-12-01T10:00:00+00:00"
    assert mail.attachments == (("agenda.txt", b"Agenda: kayaking on the estuary, then a flamenco workshop."),)
    assert "Content-Type" not in mail.text and "Subject:" not in mail.text


@pytest.mark.parametrize("data,reason", [
    (files.encrypted(files.pptx()), "encrypted"),
    (files.encrypted(files.xlsx()), "encrypted"),
    (files.truncated(files.pptx()), "corrupt or truncated zip"),
    (files.truncated(files.epub()), "corrupt or truncated zip"),
    (b"From: a@example.com\nSubject: empty\nMessage-ID: <x@y>\n\n \n", "no text found in e-mail"),
    (b"{\\rtf1\\ansi {\\b unclosed {{{ ", "could not parse RTF"),
    (files.msg()[:600], "not a valid Outlook message"),
    (files.encrypted(files.xlsx())[:512] + b"\0" * 512, "corrupt compound file|encrypted"),
])
def test_broken_files_fail_with_a_reason(data, reason):
    with pytest.raises(ParseError, match=reason):
        parse_bytes(data)


def test_prose_with_commas_is_not_csv():
    parsed = parse_bytes(b"Hello, world.\nThis line, too, has commas.\nAnd this one, as well.\n")
    assert parsed.format == "txt"


def test_a_title_and_an_abstract_with_two_commas_each_are_prose():
    # SciFact 3152612: parsed as a one-row table before, with unstructured loaded for it.
    text = ("Identification of a novel gene responsive to lipopolysaccharide, ceramide, and "
            "lysophosphatidylcholine.\n\n"
            "A novel cDNA (DIF-2) was isolated from human phagocytes, cloned, and sequenced.")
    assert parse_text(text).format == "txt"
    assert parse_text("city,river,population\nCoimbra,Mondego,140000\nPorto,Douro,230000\n").format == "csv"
    # A header and one row is a table only when the name says so.
    assert parse_text("city,river,population\nCoimbra,Mondego,140000\n").format == "txt"
    assert parse_bytes(b"city,river\nCoimbra,Mondego\n", "two.csv").format == "csv"


def test_html_mail_and_a_forwarded_mail_attached():
    from email.message import EmailMessage

    inner = EmailMessage()
    inner["Subject"], inner["From"] = "Original note", "dave@example.com"
    inner.set_content("The original note mentions the lighthouse keeper.")
    outer = EmailMessage()
    outer["Subject"], outer["From"], outer["To"] = "Fwd: note", "erin@example.com", "frank@example.com"
    outer.set_content("<html><body><h1>Forwarding</h1><p>See the note about the keeper.</p></body></html>",
                      subtype="html")
    outer.add_attachment(inner, filename="note.eml")
    parsed = parse_bytes(bytes(outer))
    assert parsed.format == "eml" and "See the note about the keeper." in parsed.text and "<p>" not in parsed.text
    (name, data), = parsed.attachments
    assert name == "note.eml"
    forwarded = parse_bytes(data)
    assert forwarded.format == "eml" and dict(forwarded.metadata)["subject"] == "Original note"
    assert "lighthouse keeper" in forwarded.text
