import os
from pathlib import Path

import pytest

# Nothing in the suite may reach a hub or phone home.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("SCARF_NO_ANALYTICS", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"

# Every service and runtime the tests start shares one folder of exported ONNX models (keyed by the weights'
# fingerprint and the export config, as in production): the export runs once per checkout, not once per test.
os.environ.setdefault("SNAPDEX_MODELS_DIR", str(REPO / ".test-models"))

# A job's build waits SNAPDEX_BUILD_DEBOUNCE_S (2 s by default) after the tenant's newest job arrived: each job a test
# waited for paid it whole. The processes the tests start take 0.2 s; a test about builds sharing jobs sets its own.
from harness import procs  # noqa: E402  (after the environment above: it imports the encoders)

procs.DEFAULTS["SNAPDEX_BUILD_DEBOUNCE_S"] = "0.2"


@pytest.fixture
def documents_dir() -> Path:
    d = SHARED / "documents"
    if not d.is_dir():
        pytest.skip(f"sample documents not found at {d}")
    return d


@pytest.fixture(scope="session")
def scifact_dir() -> Path:
    d = SHARED / "scifact"
    if not (d / "corpus.jsonl").exists():
        pytest.skip(f"SciFact not found at {d}")
    return d


QDRANT_IMAGE = os.environ.get("SNAPDEX_TEST_QDRANT_IMAGE", "qdrant/qdrant:v1.19.0")


def _docker_unavailable() -> str | None:
    try:
        import docker

        docker.from_env().ping()
    except Exception as e:  # no socket, no daemon, no permission: all mean "no engine"
        return f"no Docker engine answers ({type(e).__name__}: {e})"
    return None


@pytest.fixture(scope="session")
def qdrant_server():
    reason = _docker_unavailable()
    if reason:
        pytest.skip(f"Qdrant server tests need Docker: {reason}")
    from testcontainers.community.qdrant import QdrantContainer

    with QdrantContainer(image=QDRANT_IMAGE) as container:
        yield container


# --- the catalog database: every store's tests run on SQLite and on a real PostgreSQL ----------------------------


@pytest.fixture(scope="session")
def postgres():
    """One PostgreSQL server for the whole run (Debian's postgresql, started here); each test takes a database."""
    from harness.procs import postgres_server

    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request, tmp_path) -> str:
    """An empty catalog of each supported dialect: a SQLite file, or a fresh database on the test server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
        return
    server = request.getfixturevalue("postgres")
    url = server.create_database()
    yield url
    server.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture
def catalog_db(catalog_url):
    """The catalog at `catalog_url`, upgraded to head as every process opens it."""
    from db import open_catalog

    db = open_catalog(catalog_url)
    yield db
    db.dispose()


def _catalog_env(request) -> dict[str, str]:
    if request.param == "sqlite":
        return {}  # the embedded default: catalog.sqlite3 in the data folder
    return {"SNAPDEX_DATABASE_URL": request.getfixturevalue("postgres").create_database()}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_catalog_env(request) -> dict[str, str]:
    """Environment for a module's `snapdex serve`: its catalog on SQLite, then on PostgreSQL."""
    return _catalog_env(request)


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_env(request) -> dict[str, str]:
    """Environment for a test's own `snapdex serve` (and its CLI calls): SQLite, then PostgreSQL."""
    return _catalog_env(request)
