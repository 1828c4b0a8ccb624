"""Sources over HTTP, against a real `snapdex serve` and real sources started here: a folder of a temp directory, S3
through moto's server on loopback, a Git repository made with the `git` command (two branches), and a website served
by a local HTTP server (a sitemap, ETags, a robots.txt and a redirect off the prefix).

For each kind: a first sync, then one item edited, one added, one deleted and one renamed; the next sync counts
exactly those, sends only the edited and the added items' chunks to the model, and /retrieve (filtered by the
source's id) finds the new text, no longer the deleted item, and the renamed one under its new id."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.procs import REPO, free_port, snapdex_env, snapdex_serve, wait_until
from tests.site import Site

pytestmark = pytest.mark.slow

TEXTS = {
    "alpha": "notes: the glimmerwick procedure starts every Monday at the north depot.",
    "bravo": "notes: the fennelgrove budget is reviewed by the finance board each quarter.",
    "charlie": "notes: the marrowtide archive keeps signed invoices for seven years.",
    "delta": "notes: the quillstone badge opens the east gate after hours.",
    "echo": "notes: the sablethorn printer jams whenever its paper tray is overfilled.",
}
BRAVO_EDITED = "notes: the fennelgrove budget moved to the tundrawisp committee this spring."
FOXTROT = "notes: the plumbrook canteen serves barley soup on Thursdays."
SECOND = {"listed": 5, "new": 2, "changed": 1, "unchanged": 2, "deleted": 2, "failed": 0}


def text(kind: str, body: str) -> str:
    """Each kind's texts differ (the embedding cache is the service's): its own edits are new to the model."""
    return f"{kind.capitalize()} {body}"


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("roots")


@pytest.fixture(scope="module")
def svc(tmp_path_factory, roots):
    env = dict(SNAPDEX_SOURCE_FOLDER_ROOTS=json.dumps([str(roots)]), SNAPDEX_SOURCE_ALLOW_PRIVATE="true",
               SNAPDEX_GATE_FLOORS="{}", SNAPDEX_BUILD_DEBOUNCE_S="0.2", SNAPDEX_SOURCE_TICK_S="0.5",
               SNAPDEX_SOURCE_MIN_INTERVAL_S="1", SNAPDEX_WEBHOOK_ALLOW_PRIVATE="true",
               SNAPDEX_WEBHOOK_RETRY_SCHEDULE_S="[60]", SNAPDEX_SOURCE_TIMEOUT_S="5")
    with snapdex_serve(tmp_path_factory.mktemp("svc") / "data", log_level="info", **env) as service:
        yield service


# --- helpers ------------------------------------------------------------------------------------------------------


def create(svc, name: str, kind: str, config: dict, **fields) -> dict:
    r = svc.client.post("/sources", json={"name": name, "kind": kind, "config": config, **fields})
    assert r.status_code == 201, r.text
    return r.json()


def run_sync(svc, source_id: str) -> dict:
    r = svc.client.post(f"/sources/{source_id}/sync")
    assert r.status_code == 202, r.text
    sync_id = r.json()["sync_id"]

    def ended():
        syncs = svc.client.get(f"/sources/{source_id}/syncs").json()["syncs"]
        return next((s for s in syncs if s["sync_id"] == sync_id and s["status"] != "running"), None)

    return wait_until(ended, 180, f"sync {sync_id}", interval=0.2)


def hits(svc, query: str, source_id: str) -> list[str]:
    r = svc.client.post("/retrieve", json={"query": query, "top_k": 10,
                                           "filters": {"metadata.source_id": source_id}})
    if r.status_code == 404:  # no live snapshot yet
        return []
    assert r.status_code == 200, r.text
    return [h["doc_id"] for h in r.json()["hits"]]


def chunk_ids(svc, doc_id: str) -> set[str]:
    r = svc.client.get(f"/documents/{quote(doc_id, safe='')}/chunks")
    assert r.status_code == 200, r.text
    return {c["chunk_id"] for c in r.json()["chunks"]}


def counts(sync: dict) -> dict:
    return sync["counts"]


def check_kind(svc, kind: str, source_id: str, ids: dict[str, str], change) -> tuple[dict, dict]:
    """The scenario every kind goes through; `ids` maps alpha..foxtrot and delta2 (the renamed delta) to document
    ids; `change` edits bravo, adds foxtrot, deletes charlie and renames delta to delta2 in the source."""
    first = run_sync(svc, source_id)
    assert first["status"] == "succeeded", first
    assert counts(first) == {"listed": 5, "new": 5, "changed": 0, "unchanged": 0, "deleted": 0, "failed": 0}
    wait_until(lambda: ids["charlie"] in hits(svc, text(kind, TEXTS["charlie"]), source_id), 120, "the first build")
    assert all(i.startswith(f"{source_id}:") for i in ids.values())

    change()
    second = run_sync(svc, source_id)
    assert second["status"] == "succeeded", second
    assert counts(second) == SECOND, second
    # Only the edited and the added items' chunks went to the model: the renamed one's came from the cache.
    assert second["chunks_embedded"] == len(chunk_ids(svc, ids["bravo"]) | chunk_ids(svc, ids["foxtrot"])), second

    def visible():
        renamed = hits(svc, text(kind, TEXTS["delta"]), source_id)
        return (ids["bravo"] in hits(svc, text(kind, BRAVO_EDITED), source_id)
                and ids["foxtrot"] in hits(svc, text(kind, FOXTROT), source_id)
                and ids["charlie"] not in hits(svc, text(kind, TEXTS["charlie"]), source_id)
                and ids["delta2"] in renamed and ids["delta"] not in renamed)

    wait_until(visible, 120, f"the {kind} source's changes in the live snapshot")
    again = run_sync(svc, source_id)
    assert counts(again) == {"listed": 5, "new": 0, "changed": 0, "unchanged": 5, "deleted": 0, "failed": 0}
    assert again["job_ids"] == [] and again["chunks_embedded"] == 0
    return first, second


# --- folder ---------------------------------------------------------------------------------------------------------


def test_folder_source(svc, roots):
    folder = roots / "handbook"
    folder.mkdir()
    for name, body in TEXTS.items():
        (folder / f"{name}.txt").write_text(text("folder", body))
    src = create(svc, "handbook", "folder", {"path": str(folder)}, metadata={"team": "hr"})
    sid = src["id"]
    assert src["state"] == "new" and src["documents"] == 0 and src["config"] == {"path": str(folder)}
    ids = {n: f"{sid}:{n}.txt" for n in [*TEXTS, "foxtrot", "delta2"]}

    def change():
        (folder / "bravo.txt").write_text(text("folder", BRAVO_EDITED))
        (folder / "foxtrot.txt").write_text(text("folder", FOXTROT))
        (folder / "charlie.txt").unlink()
        (folder / "delta.txt").rename(folder / "delta2.txt")

    check_kind(svc, "folder", sid, ids, change)
    doc = svc.client.get(f"/documents/{quote(ids['bravo'], safe='')}").json()
    assert doc["metadata"]["team"] == "hr" and doc["metadata"]["source_uri"] == (folder / "bravo.txt").as_uri()
    assert doc["metadata"]["source_id"] == sid and doc["metadata"]["source_modified"].endswith("+00:00")
    listed = svc.client.get("/documents", params={"filters": json.dumps({"source_id": sid})}).json()["documents"]
    assert sorted(d["doc_id"] for d in listed) == sorted(ids[n]
                                                         for n in ("alpha", "bravo", "delta2", "echo", "foxtrot"))

    # An item that fails is reported with its reason and tried again; the others go on.
    (folder / "broken.txt").write_bytes(b"\x00\x01 binary \x00" * 40)
    failed = run_sync(svc, sid)
    assert failed["status"] == "succeeded" and counts(failed)["failed"] == 1 and counts(failed)["unchanged"] == 5
    assert failed["failures"][0]["item"] == "broken.txt" and "unsupported file type" in failed["failures"][0]["reason"]
    assert counts(run_sync(svc, sid))["failed"] == 1
    (folder / "broken.txt").unlink()

    # Unreachable: the sync fails with the reason and deletes nothing; the next one recovers.
    folder.rename(roots / "handbook-away")
    down = run_sync(svc, sid)
    assert down["status"] == "failed" and "is not there" in down["error"] and counts(down)["deleted"] == 0
    view = svc.client.get(f"/sources/{sid}").json()
    assert view["state"] == "failed" and view["last_error"] == down["error"] and view["documents"] == 5
    assert ids["alpha"] in hits(svc, text("folder", TEXTS["alpha"]), sid)
    (roots / "handbook-away").rename(folder)
    back = run_sync(svc, sid)
    assert back["status"] == "succeeded" and counts(back)["unchanged"] == 5 and counts(back)["deleted"] == 0
    assert svc.client.get(f"/sources/{sid}").json()["state"] == "ok"


# --- s3 -------------------------------------------------------------------------------------------------------------

KEY_ID, SECRET = "AKIASNAPDEXTEST0001", "s3cr3t-never-shown-7f3a9c1e5b"


@pytest.fixture(scope="module")
def moto_s3():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_s3_source_and_its_keys_never_show(svc, moto_s3, tmp_path):
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1", aws_access_key_id=KEY_ID,
                      aws_secret_access_key=SECRET)
    s3.create_bucket(Bucket="handbook")
    for name, body in TEXTS.items():
        s3.put_object(Bucket="handbook", Key=f"docs/{name}.txt", Body=text("s3", body).encode())
    s3.put_object(Bucket="handbook", Key="elsewhere/outside.txt", Body=b"outside the prefix")
    config = {"endpoint_url": moto_s3, "bucket": "handbook", "prefix": "docs/", "access_key_id": KEY_ID,
              "secret_access_key": SECRET}
    answers = []
    r = svc.client.post("/sources", json={"name": "bucket", "kind": "s3", "config": config})
    assert r.status_code == 201, r.text
    answers.append(r.text)
    src = r.json()
    sid = src["id"]
    assert src["credentials"] == ["secret_access_key"] and "secret_access_key" not in src["config"]
    ids = {n: f"{sid}:docs/{n}.txt" for n in [*TEXTS, "foxtrot", "delta2"]}

    def change():
        s3.put_object(Bucket="handbook", Key="docs/bravo.txt", Body=text("s3", BRAVO_EDITED).encode())
        s3.put_object(Bucket="handbook", Key="docs/foxtrot.txt", Body=text("s3", FOXTROT).encode())
        s3.delete_object(Bucket="handbook", Key="docs/charlie.txt")
        s3.copy_object(Bucket="handbook", Key="docs/delta2.txt", CopySource={"Bucket": "handbook",
                                                                             "Key": "docs/delta.txt"})
        s3.delete_object(Bucket="handbook", Key="docs/delta.txt")

    first, second = check_kind(svc, "s3", sid, ids, change)
    assert svc.client.get(f"/documents/{quote(ids['alpha'], safe='')}").json()["metadata"]["source_uri"] == \
        "s3://handbook/docs/alpha.txt"

    # A config change keeps the sealed key unless it is sent again; the key is never in any answer, log or export.
    r = svc.client.patch(f"/sources/{sid}", json={"config": {"region": "eu-west-1"}})
    assert r.status_code == 200 and r.json()["config"]["region"] == "eu-west-1", r.text
    assert r.json()["credentials"] == ["secret_access_key"]
    answers.append(r.text)

    # An endpoint that does not answer: the sync fails with the reason and deletes nothing; back, it recovers.
    assert svc.client.patch(f"/sources/{sid}", json={"config": {"endpoint_url": f"http://127.0.0.1:{free_port()}"}}) \
        .status_code == 200
    down = run_sync(svc, sid)
    assert down["status"] == "failed" and "did not answer the listing" in down["error"], down
    assert counts(down)["deleted"] == 0 and svc.client.get(f"/sources/{sid}").json()["documents"] == 5
    assert svc.client.patch(f"/sources/{sid}", json={"config": {"endpoint_url": moto_s3}}).status_code == 200
    answers += [json.dumps(down), json.dumps(first), json.dumps(second), svc.client.get("/sources").text,
                svc.client.get(f"/sources/{sid}").text, svc.client.get(f"/sources/{sid}/syncs").text,
                svc.client.get("/metrics").text, svc.client.get("/dashboard").text]
    assert counts(run_sync(svc, sid))["unchanged"] == 5  # the sealed key still opens the bucket
    export = subprocess.run([sys.executable, "-m", "snapdex", "db", "export"], cwd=REPO,
                            env=snapdex_env(_data_dir(svc)), capture_output=True, text=True, timeout=120)
    assert export.returncode == 0, export.stderr
    catalog = b"".join(p.read_bytes() for p in _data_dir(svc).glob("catalog.sqlite3*"))
    for where, content in [*((f"answer {i}", a) for i, a in enumerate(answers)), ("log", svc.log.read_text()),
                           ("export", export.stdout + export.stderr)]:
        assert SECRET not in content, where
    assert SECRET.encode() not in catalog  # sealed at rest


def _data_dir(svc) -> Path:
    return svc.log.parent / "data"  # harness.procs.snapdex_serve keeps its log beside the data folder


# --- git ------------------------------------------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "PATH": "/usr/bin:/bin", "HOME": str(repo.parent)}
    return subprocess.run(["git", "-C", str(repo), *args], env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


GIT_TOKEN = "ghp_snapdexNeverShown4e1d"


def test_git_source_reads_the_branch_head(svc, roots):
    repo = roots / "repo"
    repo.mkdir()
    git(repo, "init", "--quiet", "--initial-branch", "main")
    for name, body in TEXTS.items():
        (repo / f"{name}.md").write_text(f"# {name}\n\n{text('git', body)}\n")
    (repo / "logo.png").write_bytes(b"\x89PNG not a document")
    git(repo, "add", ".")
    git(repo, "commit", "--quiet", "-m", "first")
    first_commit = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "--quiet", "-b", "feature")
    (repo / "feature-only.md").write_text("# feature\n\nOnly on the feature branch: the zephyrquill flag.\n")
    git(repo, "add", ".")
    git(repo, "commit", "--quiet", "-m", "feature")
    git(repo, "checkout", "--quiet", "main")

    # A token (for an https remote; sent in a header git's environment carries) is sealed like the S3 keys.
    src = create(svc, "repo", "git", {"url": str(repo), "branch": "main", "token": GIT_TOKEN})
    sid = src["id"]
    assert src["credentials"] == ["token"] and "token" not in src["config"]
    ids = {n: f"{sid}:{n}.md" for n in [*TEXTS, "foxtrot", "delta2"]}

    def change():
        (repo / "bravo.md").write_text(f"# bravo\n\n{text('git', BRAVO_EDITED)}\n")
        (repo / "foxtrot.md").write_text(f"# foxtrot\n\n{text('git', FOXTROT)}\n")
        git(repo, "rm", "--quiet", "charlie.md")
        git(repo, "mv", "delta.md", "delta2.md")
        git(repo, "add", ".")
        git(repo, "commit", "--quiet", "-m", "second")

    check_kind(svc, "git", sid, ids, change)
    head = git(repo, "rev-parse", "HEAD")
    meta = {n: svc.client.get(f"/documents/{quote(ids[n], safe='')}").json()["metadata"] for n in ("alpha", "bravo")}
    # Each document names the commit its content was read at: the edited file the new head, the others the first.
    assert meta["bravo"]["git_commit"] == head and meta["alpha"]["git_commit"] == first_commit
    assert meta["bravo"]["source_uri"] == f"{repo}#main:bravo.md"
    assert svc.client.get(f"/documents/{quote(f'{sid}:feature-only.md', safe='')}").status_code == 404

    # The other branch: its head's files (the feature file, and main's first commit's content).
    r = svc.client.patch(f"/sources/{sid}", json={"config": {"branch": "feature"}})
    assert r.status_code == 200, r.text
    other = run_sync(svc, sid)
    assert other["status"] == "succeeded" and counts(other)["listed"] == 6, other
    assert counts(other)["new"] == 3  # feature-only.md, charlie.md and delta.md are back
    wait_until(lambda: f"{sid}:feature-only.md" in hits(svc, "zephyrquill flag", sid), 120, "the feature branch")
    r = svc.client.patch(f"/sources/{sid}", json={"config": {"branch": "no-such-branch"}})
    assert r.status_code == 200
    missing = run_sync(svc, sid)
    assert missing["status"] == "failed" and "no-such-branch" in missing["error"] and counts(missing)["deleted"] == 0
    answers = [svc.client.get(f"/sources/{sid}").text, svc.client.get(f"/sources/{sid}/syncs").text,
               svc.client.get("/sources").text, svc.log.read_text()]
    assert not [a for a in answers if GIT_TOKEN in a]


# --- web ------------------------------------------------------------------------------------------------------------


@pytest.fixture
def site():
    s = Site()
    yield s
    s.stop()


def test_web_source_crawls_within_the_prefix(svc, site):
    for name, body in TEXTS.items():
        # alpha links to bravo (inside) and to a page outside the prefix, which is never read.
        site.page(name, text("web", body), links=("bravo.html", "/other/linked.html") if name == "alpha" else ())
    site.page("private", "web robots say no")
    site.redirects["/site/moved.html"] = "/other/target.html"  # off the prefix: the page is left out
    site.sitemap = [f"/site/{n}.html" for n in TEXTS] + ["/site/moved.html", "/site/private.html", "/other/x.html"]
    src = create(svc, "site", "web", {"sitemap": f"{site.base}/sitemap.xml", "prefix": f"{site.base}/site/",
                                      "max_depth": 1})
    sid = src["id"]
    ids = {n: f"{sid}:{site.base}/site/{n}.html" for n in [*TEXTS, "foxtrot", "delta2"]}

    def change():
        site.page("bravo", text("web", BRAVO_EDITED))
        site.page("foxtrot", text("web", FOXTROT))
        del site.pages["/site/charlie.html"]
        site.pages["/site/delta2.html"] = site.pages.pop("/site/delta.html")
        site.sitemap = [f"/site/{n}.html" for n in ("alpha", "bravo", "delta2", "echo", "foxtrot")]
        site.requests.clear()

    check_kind(svc, "web", sid, ids, change)
    # Conditional GETs: the pages the last sync read answered 304; robots.txt and the prefix were obeyed.
    assert site.asked("/site/alpha.html")[0] == 304 and site.asked("/site/echo.html")[0] == 304
    assert site.asked("/site/bravo.html")[0] == 200
    everything = [p for p, _ in site.requests]
    assert "/site/private.html" not in everything and not [p for p in everything if p.startswith("/other/")]

    # A site that stops answering mid-sync (the sitemap and robots.txt still answer, the pages drop the
    # connection): the sync fails with the reason and deletes nothing; the next one recovers.
    site.down = True
    down = run_sync(svc, sid)
    assert down["status"] == "failed" and "did not answer" in down["error"] and counts(down)["deleted"] == 0
    assert svc.client.get(f"/sources/{sid}").json()["documents"] == 5
    assert ids["alpha"] in hits(svc, text("web", TEXTS["alpha"]), sid)
    site.down = False
    back = run_sync(svc, sid)
    assert back["status"] == "succeeded" and counts(back)["unchanged"] == 5 and counts(back)["deleted"] == 0


# --- one sync at a time, schedules, events, metrics, the CLI, what is refused ---------------------------------------


def test_one_sync_at_a_time_and_the_schedule(svc, roots, site):
    folder = roots / "scheduled"
    folder.mkdir()
    (folder / "a.txt").write_text("The scheduled source holds the brindlecroft memo.")
    src = create(svc, "scheduled", "folder", {"path": str(folder)})
    sid = src["id"]
    # A sync that is held at a page of a web source: a second request for it is refused, naming the running one.
    site.page("slow", "A page that takes its time.")
    site.sitemap = ["/site/slow.html"]
    reached, release = threading.Event(), threading.Event()
    site.hold = ("/site/slow.html", reached, release)
    web = create(svc, "slow-site", "web", {"sitemap": f"{site.base}/sitemap.xml", "prefix": f"{site.base}/site/"})
    first = svc.client.post(f"/sources/{web['id']}/sync").json()["sync_id"]
    try:
        assert reached.wait(60)
        r = svc.client.post(f"/sources/{web['id']}/sync")
        assert r.status_code == 409 and first in r.json()["detail"], r.text
        assert svc.client.get(f"/sources/{web['id']}").json()["state"] == "syncing"
        assert svc.client.delete(f"/sources/{web['id']}").status_code == 409
    finally:
        release.set()
    wait_until(lambda: svc.client.get(f"/sources/{web['id']}").json()["state"] == "ok", 60, "the held sync")

    # Every second, by the schedule (Celery beat in the service's process).
    r = svc.client.patch(f"/sources/{sid}", json={"schedule": {"every_s": 1}})
    assert r.status_code == 200 and r.json()["next_sync_at"] is not None, r.text
    scheduled = wait_until(lambda: [s for s in svc.client.get(f"/sources/{sid}/syncs").json()["syncs"]
                                    if s["trigger"] == "schedule" and s["status"] == "succeeded"][1:], 60,
                           "two scheduled syncs")
    assert counts(scheduled[-1])["new"] == 1  # the oldest of them read the folder first
    r = svc.client.patch(f"/sources/{sid}", json={"schedule": None})
    assert r.json()["schedule"] is None and r.json()["next_sync_at"] is None
    r = svc.client.patch(f"/sources/{sid}", json={"schedule": "*/30 * * * *"})
    assert r.json()["schedule"] == "*/30 * * * *" and 0 < r.json()["next_sync_at"] - time.time() <= 1800
    svc.client.patch(f"/sources/{sid}", json={"schedule": None})


def test_a_failed_sync_is_an_event_and_every_source_a_metric(svc, roots):
    folder = roots / "eventful"
    folder.mkdir()
    (folder / "a.txt").write_text("The eventful source holds the copperwane memo.")
    hook = svc.client.post("/webhooks", json={"url": f"http://127.0.0.1:{free_port()}/hook",
                                              "events": ["source.sync_failed"]}).json()
    src = create(svc, "eventful", "folder", {"path": str(folder)})
    assert run_sync(svc, src["id"])["status"] == "succeeded"
    shutil.rmtree(folder)
    failed = run_sync(svc, src["id"])
    assert failed["status"] == "failed"
    delivery = wait_until(lambda: svc.client.get(f"/webhooks/{hook['id']}/deliveries").json()["deliveries"], 30,
                          "the event's delivery")[0]
    assert delivery["event_type"] == "source.sync_failed"
    samples = {(x.name, tuple(sorted((k, v) for k, v in x.labels.items() if k not in ("tenant", "name", "kind")))):
               x.value for f in text_string_to_metric_families(svc.client.get("/metrics").text)
               for x in f.samples if x.labels.get("source") == src["id"]}
    me = ("source", src["id"])
    assert samples[("snapdex_source_syncs_total", (me, ("status", "failed")))] == 1
    assert samples[("snapdex_source_syncs_total", (me, ("status", "succeeded")))] == 1
    assert samples[("snapdex_source_documents", (me,))] == 1  # kept: a failed sync deletes nothing
    assert samples[("snapdex_source_last_sync_items", (("outcome", "listed"), me))] == 0  # the folder was gone
    assert ("snapdex_source_last_sync_timestamp_seconds", (me, ("status", "failed"))) in samples
    assert samples[("snapdex_source_sync_running", (me,))] == 0
    # Deleting the source takes its documents out of the next snapshot.
    r = svc.client.delete(f"/sources/{src['id']}")
    assert r.status_code == 202 and r.json()["documents"] == 1, r.text
    assert svc.client.get(f"/sources/{src['id']}").status_code == 404
    assert svc.client.get(f"/documents/{quote(src['id'] + ':a.txt', safe='')}").status_code == 404


def test_the_cli(svc, roots):
    folder = roots / "cli"
    folder.mkdir()
    (folder / "a.txt").write_text("The command line source holds the wintergleam memo.")
    made = subprocess.run([sys.executable, "-m", "snapdex", "sources", "--url", svc.url, "add", "cli-docs", "folder",
                           "--config", "-", "--metadata", '{"team": "ops"}', "--sync", "--wait", "120"],
                          cwd=REPO, env=snapdex_env(_data_dir(svc)), input=json.dumps({"path": str(folder)}),
                          capture_output=True, text=True, timeout=180)
    assert made.returncode == 0, made.stderr
    sid, _, result = made.stdout.strip().splitlines()
    assert sid.startswith("src_") and json.loads(result)["counts"]["new"] == 1
    run = lambda *a: subprocess.run([sys.executable, "-m", "snapdex", "sources", "--url", svc.url, *a],  # noqa: E731
                                    cwd=REPO, env=snapdex_env(_data_dir(svc)), capture_output=True, text=True,
                                    timeout=180)
    listing = run("list")
    assert listing.returncode == 0 and sid in listing.stdout
    assert "cli-docs" in listing.stdout and "new=1" in listing.stdout
    synced = run("sync", sid, "--wait", "120")
    assert synced.returncode == 0 and json.loads(synced.stdout.splitlines()[1])["counts"]["unchanged"] == 1
    removed = run("remove", sid)
    assert removed.returncode == 0 and "1 documents" in removed.stdout
    assert run("remove", sid).returncode != 0


def test_what_is_refused(svc, roots, tmp_path):
    c = svc.client
    cases = [
        ({"name": "x", "kind": "folder", "config": {"path": str(tmp_path)}}, "SNAPDEX_SOURCE_FOLDER_ROOTS"),
        ({"name": "x", "kind": "folder", "config": {"path": str(roots), "colour": "red"}}, "colour"),
        ({"name": "x", "kind": "folder", "config": {"path": str(roots)}, "schedule": "every day"}, "cron"),
        ({"name": "x", "kind": "folder", "config": {"path": str(roots)}, "schedule": {"every_s": 0.5}}, "every_s"),
        ({"name": "x", "kind": "folder", "config": {"path": str(roots)}, "metadata": {"source_id": "mine"}},
         "set by every sync"),
        ({"name": "x", "kind": "ftp", "config": {}}, "kind"),
        ({"name": "x", "kind": "git", "config": {"url": "ssh://git@example.com/r.git"}}, "only https"),
        ({"name": "x", "kind": "web", "config": {"max_depth": 2}}, "give url"),
        ({"name": "x", "kind": "s3", "config": {"bucket": "bkt", "access_key_id": "AKIA"}}, "go together"),
        ({"name": "", "kind": "folder", "config": {"path": str(roots)}}, "name"),
    ]
    for body, why in cases:
        r = c.post("/sources", json=body)
        assert r.status_code == 422 and why in r.text, (body, r.status_code, r.text)
    made = create(svc, "refusals", "folder", {"path": str(roots)})
    assert c.post("/sources", json={"name": "refusals", "kind": "folder", "config": {"path": str(roots)}}) \
        .status_code == 409
    assert c.patch(f"/sources/{made['id']}", json={"kind": "web"}).status_code == 422
    assert c.patch(f"/sources/{made['id']}", json={"name": None}).status_code == 422
    assert c.patch(f"/sources/{made['id']}", json={"config": {"path": "/etc"}}).status_code == 422
    for method, path in (("GET", "/sources/src_nope"), ("PATCH", "/sources/src_nope"), ("DELETE", "/sources/src_nope"),
                         ("POST", "/sources/src_nope/sync"), ("GET", "/sources/src_nope/syncs")):
        r = c.request(method, path, json={} if method == "PATCH" else None)
        assert r.status_code == 404, (method, path, r.text)
    assert c.delete(f"/sources/{made['id']}").status_code == 202


def test_a_restart_mid_sync_resumes(tmp_path, site):
    """The service is killed while a sync reads a page; started again, it runs the sync again to its end."""
    pages = ("alpha", "bravo", "charlie")  # few: a job each (one item a job), and each job costs a model pass
    for name in pages:
        site.page(name, text("restart", TEXTS[name]))
    site.sitemap = [f"/site/{n}.html" for n in pages]
    reached, release = threading.Event(), threading.Event()
    site.hold = ("/site/bravo.html", reached, release)
    # No snapshot is built here (a build would only compete with the sync for the CPU): the debounce outlasts the test.
    env = dict(SNAPDEX_SOURCE_ALLOW_PRIVATE="true", SNAPDEX_GATE_FLOORS="{}", SNAPDEX_SOURCE_BATCH_ITEMS="1",
               SNAPDEX_SOURCE_TIMEOUT_S="5", SNAPDEX_BUILD_DEBOUNCE_S="3600")
    data = tmp_path / "data"
    with snapdex_serve(data, **env) as first:
        sid = create(first, "restart", "web", {"sitemap": f"{site.base}/sitemap.xml",
                                               "prefix": f"{site.base}/site/"})["id"]
        sync_id = first.client.post(f"/sources/{sid}/sync").json()["sync_id"]
        assert reached.wait(120)
        first.kill()
    site.hold = None
    release.set()
    with snapdex_serve(data, **env) as again:
        def ended():
            syncs = again.client.get(f"/sources/{sid}/syncs").json()["syncs"]
            return next((s for s in syncs if s["sync_id"] == sync_id and s["status"] != "running"), None)

        done = wait_until(ended, 180, "the resumed sync")
        assert done["status"] == "succeeded", done
        # Alpha went in before the kill (a job of its own); the resumed run counts it as this sync's.
        assert counts(done) == {"listed": 3, "new": 3, "changed": 0, "unchanged": 0, "deleted": 0, "failed": 0}
        assert len(done["job_ids"]) == 3 and again.client.get(f"/sources/{sid}").json()["documents"] == 3


def test_beat_and_workers_beside_redis(tmp_path):
    """The production shape: `snapdex beat` sends the tick through Redis and a `snapdex worker` runs the sync."""
    from snapdex.runtime import Runtime
    from snapdex.settings import Settings
    from harness.procs import _stop, redis_server, snapdex_worker

    folder = tmp_path / "roots" / "docs"
    folder.mkdir(parents=True)
    (folder / "a.txt").write_text("The beat-driven source holds the hollowmere memo.")
    data = tmp_path / "data"
    with redis_server(tmp_path / "redis") as redis_url:
        env = dict(SNAPDEX_BROKER_URL=redis_url + "/0", SNAPDEX_EMBEDDED_WORKER="false", SNAPDEX_SOURCE_TICK_S="0.5",
                   SNAPDEX_SOURCE_FOLDER_ROOTS=json.dumps([str(tmp_path / "roots")]), SNAPDEX_GATE_FLOORS="{}",
                   SNAPDEX_BUILD_DEBOUNCE_S="3600")  # no build after the sync: the worker stops without waiting
        # The test plays the API: the source goes straight into the catalog, due now.
        rt = Runtime(Settings(data_dir=data, source_folder_roots=[tmp_path / "roots"]))
        sid = rt.sources.create("default", "docs", "folder", {"path": str(folder)}, {}, {"every_s": 3600}, {}, None,
                                time.time()).id
        log = (tmp_path / "beat.log").open("w")
        beat = subprocess.Popen([sys.executable, "-m", "snapdex", "beat", "--log-level", "warning"], cwd=REPO,
                                env=snapdex_env(data, **env), stdout=log, stderr=subprocess.STDOUT)
        try:
            with snapdex_worker(data, "sources", **env):
                done = wait_until(lambda: [s for s in rt.sources.syncs(sid) if s.status != "running"], 180,
                                  "the scheduled sync")
            assert done[0].trigger == "schedule" and done[0].status == "succeeded", done[0]
            assert done[0].counts["new"] == 1 and len(rt.sources.syncs(sid)) == 1  # once: next in an hour
            assert 3000 < rt.sources.by_id(sid).next_sync_at - time.time() <= 3600
        finally:
            _stop(beat)
            log.close()
            rt.close()
