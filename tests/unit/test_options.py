"""Retrieval options are defined once (options/): the settings, the request schema, the stage config and the tuning
search space take each name and range from there, and the typed `filters` grammar the OpenAPI document shows is the
one the edge checks."""

from __future__ import annotations

from types import SimpleNamespace

import jsonschema
import pytest

from wire.retrieve import RetrieveOptions, RetrieveRequest
from errors import InvalidInput
from index_snapshots.tuning import search_space
from options import KNOBS, RERANKERS, RERANKS, REWRITES, STAGE_NAMES, build_stages, settings_map, tuned
from options.filters import RequestFilters, check_filters
from retrieval.pipeline import StageConfig
from snapdex.settings import Settings

REQUEST = RetrieveOptions.model_json_schema()["properties"]
SETTINGS = Settings.model_json_schema()["properties"]


def _bounds(schema: dict) -> tuple:
    branch = next((s for s in schema.get("anyOf", [schema]) if s.get("type") in ("integer", "number")), schema)
    return branch.get("minimum"), branch.get("maximum")


@pytest.mark.parametrize("knob", list(KNOBS.values()), ids=list(KNOBS))
def test_every_knob_has_one_range_in_the_settings_the_request_and_the_stage_config(knob):
    assert _bounds(SETTINGS[knob.setting]) == (knob.low, knob.high)
    assert Settings.model_fields[knob.setting].default == knob.default
    if knob.name in REQUEST:
        assert _bounds(REQUEST[knob.name]) == (knob.low, knob.high)
    step = 1 if knob.kind is int else 0.5
    for bad in (knob.low - step, knob.high + step):
        with pytest.raises(InvalidInput, match="out of range"):
            StageConfig(**{knob.name: bad}, rerank="late-interaction")


def test_the_named_stages_are_the_same_everywhere():
    for field, (setting, names, default) in STAGE_NAMES.items():
        assert REQUEST[field]["anyOf"][0]["enum"] == list(names), field
        if setting:
            assert SETTINGS[setting]["enum"] == list(names) and SETTINGS[setting]["default"] == default, field
        assert getattr(StageConfig(), field) == default
    # The service's StageConfig is read off the settings by the table: every field, none left at its own default.
    s = Settings(late_long_tokens=7, retrieval_rrf_k=9, rerank="late-interaction")
    stages = StageConfig(**{field: getattr(s, setting) for field, setting in settings_map().items()})
    assert (stages.late_long_tokens, stages.rrf_k, stages.rerank) == (7, 9, "late-interaction")
    assert set(settings_map()) == set(vars(StageConfig())) - {"first_stage"}


def test_a_reranker_is_one_row_of_the_registry():
    assert RERANKS == (*RERANKERS, "none") and REWRITES[0] == "none"
    offered = build_stages(RERANKERS, SimpleNamespace(cross_encoder_path=None))
    assert list(offered) == ["none", "late-interaction"] and offered["late-interaction"].name == "late-interaction"
    assert tuned(RERANKERS, offered) == ["late-interaction"]
    space = search_space(StageConfig(), list(offered), ["none", "normalize", "prf"])
    assert space.values["rerank"] == ("none", "late-interaction") and space.values["rewrite"] == ("none", "prf")
    assert space.values["candidates"] == (100, 50, 200) and "late_long_dense" not in space.values


GOOD = [{"doc_id": "a"}, {"doc_id": ["a", "b"]}, {"title": "T", "source": ["s.pdf"]}, {"metadata.team": "hr"},
        {"metadata.year": 2024}, {"metadata.ok": True}, {"metadata.tags": ["x", "y"]}, {"metadata.n": [1, 2]},
        {"metadata.year": {"gte": 2020, "lt": 2024.5}}, {"metadata.a-b_c": "x", "doc_id": "d"}, {}]
BAD = [({"team": "hr"}, "filter key 'team' is not a filterable field; filter on doc_id, title, source, "
                        "metadata.<field>"),
       ({"metadata": "x"}, "filter key 'metadata' is not a filterable field"),
       ({"metadata.a.b": "x"}, "filter key 'metadata.a.b' is not a filterable field"),
       ({"sources[].access": "x"}, "filter key 'sources[].access' is not a filterable field"),
       ({"doc_id": 3}, "filter 'doc_id' takes a string or a non-empty list of strings, got 3"),
       ({"title": []}, "filter 'title' takes a string or a non-empty list of strings, got []"),
       ({"metadata.y": 1.5}, "invalid filter 'metadata.y': 1.5; expected a str/int/bool"),
       ({"metadata.y": [1, "a"]}, "invalid filter 'metadata.y': [1, 'a']"),
       ({"metadata.y": []}, "invalid filter 'metadata.y': []"),
       ({"metadata.y": [True]}, "invalid filter 'metadata.y': [True]"),
       ({"metadata.y": {}}, "invalid filter 'metadata.y': {}"),
       ({"metadata.y": {"zz": 1}}, "invalid filter 'metadata.y': {'zz': 1}"),
       ({"metadata.y": {"gte": True}}, "invalid filter 'metadata.y': {'gte': True}"),
       ({"metadata.y": None}, "invalid filter 'metadata.y': None"),
       ({"metadata.y": 2**63}, "invalid filter 'metadata.y': 9223372036854775808")]


def test_the_filters_grammar_refuses_with_its_messages_and_the_schema_says_the_same():
    schema = RetrieveRequest.model_json_schema()["$defs"]["RequestFilters"]
    for filters in GOOD:
        assert check_filters(filters) is filters
        jsonschema.validate(filters, schema)
        assert RetrieveRequest(query="q", filters=filters).filters == filters
    for filters, message in BAD:
        with pytest.raises(InvalidInput) as refused:
            check_filters(filters)
        assert str(refused.value).startswith(message), (filters, str(refused.value))
        if not any(isinstance(v, int) and abs(v) >= 2**63 for v in filters.values()):  # format int64 bounds it
            with pytest.raises(jsonschema.ValidationError):
                jsonschema.validate(filters, schema)
    # A field's type: the sent dict, checked when the body is parsed.
    with pytest.raises(ValueError, match="not a filterable field"):
        RetrieveRequest(query="q", filters={"access": "x"})
    assert RequestFilters.__name__ == schema["title"]
