"""Request filters over HTTP (ingest/filters.py): only documented fields may be filtered, and on behalf of a principal
a filter matches through the documents it may read only, also where a hidden document shares a chunk with a readable
one. Against one `snapdex serve` with two tenants, an admin, a user and a service key."""

from __future__ import annotations

import random

import pytest

from harness.procs import auth, snapdex_serve
from tests.test_access import LETTERS, bearer, keys_cli

pytestmark = pytest.mark.slow

TENANT = "flt"
MERGER = "The merger with Quintex closes in spring; every office keeps its staff and its lease."
DOCS = [
    # The same text under two ids: one chunk, one point, two sources. Carol's is listed first (by id).
    {"id": "board-minutes", "text": MERGER, "access": {"users": ["carol@acme"]},
     "metadata": {"title": "Layoffs 2027", "source": "minutes.pdf", "team": "board", "year": 2027}},
    {"id": "handbook", "text": MERGER,
     "metadata": {"title": "Employee handbook", "source": "handbook.pdf", "team": "hr", "year": 2020}},
    {"id": "leave", "text": "Parental leave is sixteen weeks, paid in full, for every office.",
     "metadata": {"title": "Leave", "team": "hr", "year": 2027}},
]
HIDDEN = ("board-minutes", "Layoffs 2027", "minutes.pdf", "board")
PROP = "prop"  # the tenant of the random corpus
USERS, GROUPS, TEAMS = ["u0", "u1", "u2", "u3"], ["g0", "g1"], ["hr", "eng", "legal"]


def prop_corpus(rng: random.Random, n: int = 36) -> list[dict]:
    """Short documents (one chunk each) of random words; a third of them the exact text of another (one point, two
    sources) under their own id, title, metadata and access list."""
    docs = []
    for i in range(n):
        text = docs[rng.randrange(len(docs))]["text"] if docs and i % 3 == 2 else \
            " ".join("".join(rng.choice(LETTERS) for _ in range(6)) for _ in range(10)) + "."
        roll = rng.random()
        access = None if roll < 0.3 else {"users": rng.sample(USERS, rng.randint(0, 2)),
                                          "groups": rng.sample(GROUPS, rng.randint(0, 1))}
        docs.append({"id": f"p{i:02d}", "text": text, "access": access,
                     "metadata": {"title": f"T{i % 5}", "team": rng.choice(TEAMS), "year": rng.randint(2019, 2026)}})
    return docs


def prop_filter(rng: random.Random, docs: list[dict]) -> dict:
    d = rng.choice(docs)
    options = {"doc_id": d["id"], "title": d["metadata"]["title"], "metadata.team": d["metadata"]["team"],
               "metadata.year": rng.choice([d["metadata"]["year"], {"gte": d["metadata"]["year"]}])}
    return {k: options[k] for k in rng.sample(sorted(options), rng.randint(1, 3))}


def meets(doc: dict, filters: dict) -> bool:
    fields = {"doc_id": doc["id"], "title": doc["metadata"]["title"],
              **{f"metadata.{k}": v for k, v in doc["metadata"].items()}}
    return all(fields[k] >= v["gte"] if isinstance(v, dict) else fields[k] == v for k, v in filters.items())


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    data = tmp_path_factory.mktemp("filters") / "data"
    with snapdex_serve(data, tenants=(TENANT, "other", PROP), SNAPDEX_RATE_LIMIT_RETRIEVE="",
                       SNAPDEX_GATE_FLOORS="{}") as s:
        job = s.client.post("/ingest", json={"documents": DOCS}, headers=auth(TENANT)).json()["job_id"]
        assert s.wait_job(job, headers=auth(TENANT))["status"] == "succeeded"
        # The other tenant holds the hidden document's values too: nothing of it may answer either.
        other = [{**DOCS[0], "access": None}]
        job = s.client.post("/ingest", json={"documents": other}, headers=auth("other")).json()["job_id"]
        assert s.wait_job(job, headers=auth("other"))["status"] == "succeeded"
        s.keys = {"admin": auth(TENANT),
                  "alice": bearer(keys_cli(data, "create", "--tenant", TENANT, "--scope", "user",
                                           "--user", "alice@acme", "--groups", "eng")),
                  "carol": bearer(keys_cli(data, "create", "--tenant", TENANT, "--scope", "user",
                                           "--user", "carol@acme")),
                  "service": bearer(keys_cli(data, "create", "--tenant", TENANT, "--scope", "service")),
                  PROP: bearer(keys_cli(data, "create", "--tenant", PROP, "--scope", "service"))}
        s.prop = prop_corpus(random.Random(31))
        job = s.client.post("/ingest", json={"documents": s.prop}, headers=auth(PROP)).json()["job_id"]
        assert s.wait_job(job, headers=auth(PROP))["status"] == "succeeded"
        yield s


def retrieve(svc, key: str, filters: dict, **body):
    if key == "service":
        body["principal"] = {"user": "alice@acme", "groups": ["eng"]}
    return svc.client.post("/retrieve", json={"query": "merger office staff lease", "top_k": 10, "filters": filters,
                                              **body}, headers=svc.keys[key])


def doc_ids(r) -> list[str]:
    assert r.status_code == 200, r.text
    return [h["doc_id"] for h in r.json()["hits"]]


@pytest.mark.parametrize("key", ["alice", "service"])
def test_a_principals_filters_see_only_the_documents_it_may_read(svc, key):
    for filters in ({"doc_id": "board-minutes"}, {"title": "Layoffs 2027"}, {"source": "minutes.pdf"},
                    {"metadata.team": "board"}, {"metadata.team": ["board", "legal"]},
                    {"metadata.title": "Layoffs 2027"},
                    # The hidden document's year, through the readable one's id or title: no one document has both.
                    {"doc_id": "handbook", "metadata.year": {"gte": 2027}},
                    {"title": "Employee handbook", "metadata.year": 2027}):
        r = retrieve(svc, key, filters)
        assert doc_ids(r) == [], filters
        assert not [s for s in HIDDEN if s in r.text], (filters, r.text)
    for filters in ({"doc_id": "handbook"}, {"title": "Employee handbook"}, {"source": "handbook.pdf"},
                    {"metadata.team": "hr", "metadata.year": 2020}, {"doc_id": ["handbook", "board-minutes"]}):
        r = retrieve(svc, key, filters)
        assert doc_ids(r) == ["handbook"], filters
        hit = r.json()["hits"][0]
        assert [s["doc_id"] for s in hit["sources"]] == ["handbook"] and hit["metadata"]["team"] == ["hr"]
        assert not [s for s in HIDDEN if s in r.text], (filters, r.text)
    # A year both a readable and a hidden document hold: the readable one's hit only.
    assert doc_ids(retrieve(svc, key, {"metadata.year": 2027})) == ["leave"]


def test_the_reader_of_both_and_an_admin_filter_as_before(svc):
    for key in ("carol", "admin"):
        for filters in ({"doc_id": "board-minutes"}, {"title": "Layoffs 2027"}, {"metadata.team": "board"}):
            assert doc_ids(retrieve(svc, key, filters)) == ["board-minutes"], (key, filters)
        assert sorted(doc_ids(retrieve(svc, key, {"metadata.year": 2027}))) == ["board-minutes", "leave"]
        assert doc_ids(retrieve(svc, key, {"metadata.team": "hr", "metadata.year": {"lte": 2020}})) == \
            ["board-minutes"]  # the shared chunk, through the handbook: its first source is the minutes
        # Every condition on one document: the minutes' title and the handbook's team are no one document's.
        assert doc_ids(retrieve(svc, key, {"title": "Layoffs 2027", "metadata.team": "hr"})) == []
    assert sorted(doc_ids(retrieve(svc, "admin", {"metadata.team": "hr"}))) == ["board-minutes", "leave"]


@pytest.mark.parametrize("key", ["sources[].access", "access", "doc_ids", "tenant", "sources[].title", "chunk_hash",
                                 "text", "metadata", "metadata.a.b"])
def test_internal_fields_are_refused_naming_the_key(svc, key):
    for who in ("alice", "service", "admin"):
        r = retrieve(svc, who, {key: "u:carol@acme"})
        assert r.status_code == 422, (who, key, r.text)
        assert repr(key) in r.json()["detail"] and "doc_id, title, source, metadata.<field>" in r.json()["detail"]
    batch = svc.client.post("/retrieve/batch", json={"requests": [{"query": "merger"},
                                                                  {"query": "merger", "filters": {key: "x"}}]},
                            headers=svc.keys["alice"])
    assert batch.status_code == 422 and repr(key) in batch.json()["detail"], batch.text


def test_filters_on_behalf_of_principals_match_a_brute_force_oracle(svc):
    """Random principals and filters over a corpus where a third of the chunks are shared: every chunk one of whose
    documents the principal may read and meets the filter comes back (top_k holds them all), nothing else, and no
    hit names a document the principal may not read."""
    rng = random.Random(32)
    docs = svc.prop
    pairs = [((rng.choice(USERS), rng.sample(GROUPS, rng.randint(0, 2))), prop_filter(rng, docs)) for _ in range(120)]
    requests = [{"query": "words", "top_k": 100, "filters": f, "principal": {"user": u, "groups": g}}
                for (u, g), f in pairs]
    answers = []
    for i in range(0, len(requests), 40):
        r = svc.client.post("/retrieve/batch", json={"requests": requests[i:i + 40]}, headers=svc.keys[PROP])
        assert r.status_code == 200, r.text
        answers += r.json()["answers"]
    matched = 0
    for ((user, groups), filters), answer in zip(pairs, answers):
        readable = {d["id"] for d in docs if d["access"] is None or user in d["access"]["users"]
                    or set(groups) & set(d["access"]["groups"])}
        want = {d["text"] for d in docs if d["id"] in readable and meets(d, filters)}
        assert {h["text"] for h in answer["hits"]} == want, (user, groups, filters)
        for h in answer["hits"]:
            assert {s["doc_id"] for s in h["sources"]} <= readable and h["doc_id"] in readable
        matched += bool(want)
    assert matched > len(pairs) // 4
