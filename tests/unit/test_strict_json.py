"""The strict JSON reader (api/strict.py) and the id grammar (ingest/ids.py), without a service."""

from __future__ import annotations

import json

import pytest
from fastapi import HTTPException

from api.strict import MAX_DEPTH, MAX_ERRORS, parse_json
from ingest.ids import attachment_ids, clean_name
from wire.ids import MAX_ID_CHARS, id_problem


def refused(text: str | bytes, loc=("body",)) -> list[dict]:
    with pytest.raises(HTTPException) as e:
        parse_json(text, loc)
    assert e.value.status_code == 422
    json.dumps(e.value.detail, ensure_ascii=False).encode("utf-8")  # the answer can always be written
    return e.value.detail


def test_lawful_json_reads_as_python_reads_it():
    text = json.dumps({"int": [2**63 - 1, -(2**63), 0], "float": [1.5e308, -2.5e-300, 0.1], "s": "tab\tline\nü日本",
                       "nested": [[[{"k": None, "b": True}]]], "emoji": "\U0001d47b", "ctl": "\x07\x1b\x7f\x85"})
    assert parse_json(text, ("body",)) == json.loads(text) == parse_json(text.encode(), ("body",))
    deepest = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert parse_json(deepest, ("body",)) == json.loads(deepest)


@pytest.mark.parametrize("token,kind", [("NaN", "finite_number"), ("Infinity", "finite_number"),
                                        ("-Infinity", "finite_number"), ("1e309", "finite_number"),
                                        ("-4.5e400", "finite_number"), (str(2**63), "int64_range"),
                                        (str(-(2**63) - 1), "int64_range"), ("9" * 5000, "int64_range"),
                                        ('"a\\ud800"', "string_unicode"), ('"\\udfff"', "string_unicode"),
                                        ('"nul\\u0000"', "string_unicode")])
def test_what_cannot_be_stored_is_named_where_it_is(token, kind):
    detail = refused('{"documents": [{"metadata": {"x": [1, %s]}}]}' % token)
    assert [(e["type"], e["loc"]) for e in detail] == [(kind, ["body", "documents", 0, "metadata", "x", 1])]


def test_keys_hold_no_control_character_nor_lone_surrogate_and_are_shown_escaped():
    detail = refused('{"a\\nb": 1, "\\ud800": 2, "fine": {"\\u0000": 3}}', ("query", "filters"))
    assert [e["loc"] for e in detail] == [["query", "filters", "a\nb"], ["query", "filters", "\\ud800"],
                                          ["query", "filters", "fine", "\x00"]]
    assert "U+000A (LINE FEED)" in detail[0]["msg"] and "U+D800 (lone surrogate)" in detail[1]["msg"]


def test_depth_bad_text_and_the_number_of_errors_are_bounded():
    assert refused("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))[0]["type"] == "json_depth"
    assert refused("[" * 100_000 + "]" * 100_000)[0]["type"] == "json_depth"  # Python's reader: RecursionError
    assert refused(b'{"x": "\xff"}')[0]["msg"].startswith("not UTF-8")
    assert refused('{"x": 1,}')[0]["type"] == "json_invalid"
    assert len(refused(json.dumps(["\x00"] * 100))) == MAX_ERRORS


@pytest.mark.parametrize("doc_id,problem", [("", "empty"), (" \t", "blank"), ("x" * (MAX_ID_CHARS + 1), "at most"),
                                            ("a\nb", "U+000A"), ("\x00", "U+0000"), ("a\x85", "U+0085"),
                                            ("\ud800", "lone surrogate")])
def test_ids_the_grammar_refuses(doc_id, problem):
    assert problem in id_problem(doc_id)


@pytest.mark.parametrize("doc_id", ["a", "a/chunks", "x%2Fy", "q?x#y", "sp ace", "ünï/cødé", "..", "x" * MAX_ID_CHARS,
                                    "\u200bzero-width", "\U0001d47b"])
def test_ids_the_grammar_takes(doc_id):
    assert id_problem(doc_id) is None


def test_attachment_ids_are_valid_unique_and_fit():
    names = ["a.pdf", "a.pdf", "", "x\r\ny.txt", "\ud800", "n" * 600 + ".docx"]
    ids = attachment_ids("mail-1", names)
    assert ids[:5] == ["mail-1/a.pdf", "mail-1/2-a.pdf", "mail-1/attachment-3", "mail-1/x  y.txt",
                       "mail-1/attachment-5"]
    assert ids[5].endswith(".docx") and len(ids[5]) == MAX_ID_CHARS
    long_mail = "m" * MAX_ID_CHARS
    for found in (ids, attachment_ids(long_mail, ["r.pdf", "r.pdf"])):
        assert len(set(found)) == len(found) and all(id_problem(i) is None for i in found)
    assert clean_name("\x00\x01 ", "fallback") == "fallback"


def test_every_route_reads_strictly_and_bounds_its_integers():
    """A route added later gets the strict reader, and an integer parameter it declares says its 64-bit bound (the
    catalog could not look up a larger one: it used to be a 500)."""
    import pkgutil
    from importlib import import_module

    import api.routes
    from api.main import create_app
    from api.strict import INT64_MAX, StrictRoute

    for info in pkgutil.iter_modules(api.routes.__path__):
        router = import_module(f"api.routes.{info.name}").router
        assert router.routes and all(isinstance(r, StrictRoute) for r in router.routes), info.name
    for path, ops in create_app().openapi()["paths"].items():
        for method, op in ops.items():
            for p in op.get("parameters", []):
                schemas = [p["schema"], *p["schema"].get("anyOf", [])]
                for s in (s for s in schemas if s.get("type") == "integer"):
                    assert s.get("maximum", INT64_MAX + 1) <= INT64_MAX, (method, path, p["name"])
