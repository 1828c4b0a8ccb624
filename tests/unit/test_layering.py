"""Imports point one way: the settings and the command line import nothing of the API, and the catalog's package
(db/) imports nothing of the project above it."""

from __future__ import annotations

import subprocess
import sys

from tests.procs import REPO

PROJECT = ("api", "workers", "index_snapshots", "eval", "ingest", "retrieval", "encoders", "store", "snapdex", "db",
           "notify", "sources", "errors", "online")


def loaded_after(module: str) -> set[str]:
    code = (f"import sys, {module}; "
            "print('\\n'.join(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return set(out.stdout.split()) & set(PROJECT)


def test_settings_and_cli_import_nothing_of_the_api():
    assert "api" not in loaded_after("snapdex.settings")
    assert "api" not in loaded_after("snapdex.cli")


def test_the_catalog_package_sits_at_the_bottom():
    for module in ("db", "db.tables", "db.locks", "db.migrate", "db.transfer"):
        assert loaded_after(module) == {"db"}, module


def test_the_domain_errors_sit_below_everything():
    """Every layer raises InvalidInput, NotFound, Conflict, Unavailable where it finds the problem; api/errors.py
    answers them. So errors/ imports nothing of the project, and the lowest layers load nothing else with it."""
    assert loaded_after("errors") == {"errors"}
    for module in ("store.filters", "ingest.tenants", "retrieval.pruning"):
        assert not {"api", "workers", "snapdex", "sources"} & loaded_after(module), module


def test_the_webhooks_package_sits_just_above_the_catalog():
    """ingest/ and index_snapshots/ write events in their own transactions, so notify/ reaches nothing above db/
    (but the domain errors, below everything)."""
    for module in ("notify", "notify.store", "notify.delivery", "notify.secrets"):
        assert loaded_after(module) <= {"db", "notify", "errors"}, module
        assert {"db", "notify"} <= loaded_after(module), module


def test_sources_sit_below_the_api_and_the_workers():
    """sources/ runs its syncs through index_snapshots/ and ingest/; api/ and workers/ call it, never the reverse."""
    for module in ("sources.sync", "sources.kinds", "sources.store", "sources.schedule"):
        assert not {"api", "workers"} & loaded_after(module), module


def test_online_evaluation_is_pure():
    """online/ is statistics and a simulated user: the service feeds it counts, so it reaches nothing of the
    project but the domain errors."""
    for module in ("online", "online.interleave", "online.sequential", "online.click_model"):
        assert loaded_after(module) <= {"online", "errors"}, module
