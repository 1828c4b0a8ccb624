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
