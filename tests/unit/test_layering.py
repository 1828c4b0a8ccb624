"""Imports point one way. The package graph is built from the source (every import statement, those inside
functions and TYPE_CHECKING blocks too: a lazy import is still a dependency) and checked against LAYERS; what
importing the settings, the client and the lowest packages loads is checked in a fresh interpreter."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from harness.procs import REPO

# snapdex/ holds three layers, one node each: the entry points on top (the command line, the Python client, the
# LlamaIndex adapter, `snapdex evaluate`), the composition root (Runtime, and the process-wide pieces it and the API
# share: keys, logs, memory), and the settings, a leaf.
COMPOSITION_ROOT = ("runtime", "keys", "logs", "memory")
# Top first. A package imports from the layers below its own, and within its layer only along SIDEWAYS.
LAYERS = (
    ("snapdex",),
    ("api", "workers"),
    ("snapdex.runtime",),
    ("snapdex.settings",),
    ("sources",),
    ("index_snapshots", "eval"),
    ("ingest", "retrieval"),
    ("encoders", "store"),
    ("notify",),
    ("db",),
    ("wire", "online"),  # pure: pydantic (wire) or numpy/scipy (online) at most
    ("options",),  # the retrieval stages' names and knobs' bounds, which the wire and every layer take
    ("errors",),
)
SIDEWAYS = {("api", "workers"), ("index_snapshots", "eval"), ("encoders", "store")}
RANK = {node: rank for rank, layer in enumerate(LAYERS) for node in layer}
PROJECT = {node.split(".")[0] for node in RANK}
NOT_SHIPPED = {"tests", "bench", "harness", "scripts", "deploy"}  # not installed: nothing shipped imports them

# Libraries that make an import slow or pull the server in; none may come with the settings or the client.
HEAVY = {"fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "psycopg", "qdrant_edge", "qdrant_client",
         "numpy", "torch", "celery", "redis", "llama_index", "unstructured", "onnxruntime", "sentence_transformers"}


def node_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] not in PROJECT:
        return None
    if parts[0] == "snapdex" and len(parts) > 1:
        if parts[1] == "settings":
            return "snapdex.settings"
        if parts[1] in COMPOSITION_ROOT:
            return "snapdex.runtime"
    return parts[0]


def _module_name(path: Path, root: Path) -> tuple[str, bool]:
    parts = path.relative_to(root).with_suffix("").parts
    is_package = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_package else parts), is_package


def _is_module(name: str, root: Path) -> bool:
    base = root.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imported_modules(path: Path, root: Path) -> list[str]:
    """Every module the file imports; `from a import b` names a.b when b is a module."""
    name, is_package = _module_name(path, root)
    package = name if is_package else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for a in node.names:
                full = f"{base}.{a.name}" if base else a.name
                out.append(full if _is_module(full, root) else base)
    return out


def python_files(root: Path, top: str) -> list[Path]:
    return sorted((root / top).rglob("*.py"))


def package_graph(root: Path = REPO) -> dict[tuple[str, str], set[str]]:
    """(importing node, imported node) -> the modules that import so, for every project package."""
    edges: dict[tuple[str, str], set[str]] = defaultdict(set)
    for top in sorted(PROJECT):
        for path in python_files(root, top):
            source = node_of(_module_name(path, root)[0])
            for module in imported_modules(path, root):
                target = node_of(module)
                if target is not None and target != source:
                    edges[(source, target)].add(_module_name(path, root)[0])
    return dict(edges)


def cycles(edges) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(list(graph)):
        if v not in index:
            visit(v)
    return found


def loaded_after(module: str) -> set[str]:
    """The top-level names of every module a fresh interpreter holds after importing `module`."""
    code = f"import sys, json, {module}; print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def project_after(module: str) -> set[str]:
    return loaded_after(module) & PROJECT


def test_every_package_has_its_layer():
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")}
    assert packages - NOT_SHIPPED <= PROJECT, "a new package: give it its place in LAYERS"


def against_layers(edges) -> dict[str, list[str]]:
    """The edges LAYERS does not allow: "importer -> imported" -> the importing modules."""
    return {f"{a} -> {b}": sorted(modules) for (a, b), modules in edges.items()
            if not (RANK[a] < RANK[b] or (a, b) in SIDEWAYS)}


def test_every_import_points_down_the_layers():
    assert not (wrong := against_layers(package_graph())), f"imports against LAYERS: {wrong}"


def test_no_package_level_cycle():
    assert cycles(package_graph()) == []


def test_the_graph_checks_see_a_wrong_way_import(tmp_path):
    """The checks above would pass on a graph they cannot read: one upward import, planted, must show."""
    for top in ("api", "snapdex", "store"):
        (tmp_path / top).mkdir()
        (tmp_path / top / "__init__.py").write_text("")
    (tmp_path / "snapdex" / "settings.py").write_text("X = 1\n")
    (tmp_path / "snapdex" / "runtime.py").write_text("from snapdex import settings\n")
    (tmp_path / "api" / "routes.py").write_text("from snapdex.runtime import X\n")
    (tmp_path / "store" / "edge.py").write_text("def f():\n    from .. import api\n    import snapdex.runtime\n")
    edges = package_graph(tmp_path)
    assert set(edges) == {("snapdex.runtime", "snapdex.settings"), ("api", "snapdex.runtime"),
                          ("store", "api"), ("store", "snapdex.runtime")}
    assert against_layers(edges) == {"store -> api": ["store.edge"], "store -> snapdex.runtime": ["store.edge"]}
    assert cycles(edges) == []
    assert cycles({**edges, ("snapdex.runtime", "store"): {"x"}}) == [["api", "snapdex.runtime", "store"]]


def test_the_settings_are_a_leaf():
    """Every process imports the settings first: they load pydantic-settings and the light checks they need."""
    loaded = loaded_after("snapdex.settings")
    assert not loaded & HEAVY, sorted(loaded & HEAVY)
    assert loaded & PROJECT <= {"snapdex", "eval", "ingest", "options", "errors"}, sorted(loaded & PROJECT)


def test_the_client_loads_neither_the_server_nor_the_database():
    loaded = loaded_after("snapdex.client")
    assert not loaded & HEAVY, sorted(loaded & HEAVY)
    assert {"snapdex", "wire"} <= loaded & PROJECT <= {"snapdex", "wire", "options", "errors"}
    assert {"httpx", "pydantic"} <= loaded


def test_the_wire_imports_pydantic_the_options_and_the_errors_only():
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for path in python_files(REPO, "wire"):
        outside = {m.split(".")[0] for m in imported_modules(path, REPO)} - stdlib - {"pydantic", "wire", "options",
                                                                                      "errors"}
        assert not outside, (path.name, outside)
    assert {"wire", "errors"} <= project_after("wire.operations") <= {"wire", "options", "errors"}


def test_settings_and_cli_import_nothing_of_the_api():
    assert "api" not in project_after("snapdex.settings")
    cli = loaded_after("snapdex.cli")  # every command starts here: what a command needs, it imports when it runs
    assert not cli & (HEAVY | {"pydantic", "api"}), sorted(cli & (HEAVY | {"pydantic", "api"}))


def test_benchmarks_import_no_test_module():
    """bench/ and the harness it shares with the tests import nothing of tests/ (nor the tests of bench/)."""
    found = {str(p.relative_to(REPO)): m for top in ("bench", "harness") for p in python_files(REPO, top)
             for m in imported_modules(p, REPO) if m.split(".")[0] == "tests"}
    assert not found, found


def test_the_catalog_package_sits_at_the_bottom():
    for module in ("db", "db.tables", "db.locks", "db.migrate", "db.transfer"):
        assert project_after(module) == {"db"}, module


def test_the_domain_errors_sit_below_everything():
    """Every layer raises InvalidInput, NotFound, Conflict, Unavailable where it finds the problem; api/errors.py
    answers them. So errors/ imports nothing of the project, and the lowest layers load nothing else with it."""
    assert project_after("errors") == {"errors"}
    for module in ("store.filters", "ingest.tenants", "retrieval.pruning"):
        assert not {"api", "workers", "snapdex", "sources"} & project_after(module), module


def test_the_webhooks_package_sits_just_above_the_catalog():
    """ingest/ and index_snapshots/ write events in their own transactions, so notify/ reaches nothing above db/
    (but the domain errors, below everything)."""
    for module in ("notify", "notify.store", "notify.delivery", "notify.secrets"):
        assert project_after(module) <= {"db", "notify", "errors"}, module
        assert {"db", "notify"} <= project_after(module), module


def test_sources_sit_below_the_api_and_the_workers():
    """sources/ runs its syncs through index_snapshots/ and ingest/; api/ and workers/ call it, never the reverse."""
    for module in ("sources.sync", "sources.kinds", "sources.store", "sources.schedule"):
        assert not {"api", "workers"} & project_after(module), module


def test_the_retrieval_options_sit_below_everything_and_load_nothing_heavy():
    """Settings, the request schemas, the stages, the store and the encoders all take their names and bounds from
    options/, so it imports nothing of the project but the domain errors, and no heavy library."""
    assert project_after("options") == {"options", "errors"}
    assert not HEAVY & loaded_after("options")


def test_online_evaluation_is_pure():
    """online/ is statistics and a simulated user: the service feeds it counts, so it reaches nothing of the
    project but the domain errors."""
    for module in ("online", "online.interleave", "online.sequential", "online.click_model"):
        assert project_after(module) <= {"online", "errors"}, module
