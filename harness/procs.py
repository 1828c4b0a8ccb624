"""Real processes for the tests and the benchmarks: redis-server, PostgreSQL, `snapdex serve`, `snapdex worker`.
Each test starts its own."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from encoders.dense import HashEmbedder
from encoders.embedding import FAKE_BACKEND, FAKE_DIM

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def key_for(tenant: str | None) -> str:
    """A test's API key for a tenant (None: the operator). Deterministic, so helpers need no shared state."""
    return f"sdx_test_{tenant or 'operator'}_0123456789abcdef"


def auth(tenant: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key_for(tenant)}"}


def keys_env(*tenants: str) -> str:
    """SNAPDEX_API_KEYS for these tenants and the operator, as an operator would set it: hashes only."""
    from snapdex.keys import digest
    from snapdex.settings import OPERATOR

    return json.dumps({digest(key_for(t)): t or OPERATOR for t in (*tenants, None)})


# A test whose point is the model (its ranking, its ids, its loading) serves with it: `**MODEL` in its env.
MODEL = {"SNAPDEX_EMBEDDER_BACKEND": "onnx-int8"}
FAKE_MODEL_ID = HashEmbedder(dim=FAKE_DIM).model_id  # what the others serve with


# Settings of every process started here that its caller does not set. tests/conftest.py adds the tests' own: the
# benchmarks start their processes here too, and measure with the product's defaults.
DEFAULTS: dict[str, str] = {"SNAPDEX_EMBEDDER_BACKEND": FAKE_BACKEND}


def snapdex_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a snapdex process: DEFAULTS, then `extra`. Its embedder is the deterministic fake
    (SNAPDEX_EMBEDDER_BACKEND=hash: no model loads, ingest costs no forward passes) unless `extra` names a backend,
    as `**MODEL` does."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPDEX_") or k == "SNAPDEX_MODELS_DIR"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1", SNAPDEX_DATA_DIR=str(data_dir))
    env.update(DEFAULTS)
    env.update(extra)
    return env


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextmanager
def redis_server(tmp: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (Debian package redis-server; .ci/run installs it)")
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp),
                             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import redis

        client = redis.Redis(port=port)
        wait_until(lambda: _ping(client), 20, "redis-server")
        yield f"redis://127.0.0.1:{port}"
    finally:
        _stop(proc)


def _ping(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


class Service:
    def __init__(self, proc: subprocess.Popen, url: str, log: Path, headers: dict[str, str]) -> None:
        self.proc, self.url, self.log = proc, url, log
        self.client = httpx.Client(base_url=url, timeout=120, headers=headers)

    def kill(self) -> None:
        _stop(self.proc, signal.SIGKILL)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]

    def wait_job(self, job_id: str, timeout: float = 300, headers: dict | None = None) -> dict:
        def settled():
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited ({self.proc.returncode}):\n{self.logs()}")
            view = self.client.get(f"/jobs/{job_id}", headers=headers).json()
            return view if view.get("status") in ("succeeded", "failed") else None

        return wait_until(settled, timeout, f"job {job_id}", interval=0.3)


@contextmanager
def snapdex_serve(data_dir: Path, log_level: str = "warning", tenants: tuple[str, ...] | None = None,
                  repo: Path = REPO, **env: str) -> Iterator[Service]:
    """`snapdex serve` on a free port. With `tenants`, API keys are required: one per tenant (and the default
    tenant, whose key the client sends unless a call passes its own `auth(...)`), plus the operator's. `repo`: the
    checkout whose code serves (a bench compares two)."""
    if tenants is not None:
        env.setdefault("SNAPDEX_API_KEYS", keys_env("default", *tenants))
    port = free_port()
    log = data_dir.parent / f"serve-{port}.log"
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "snapdex", "serve", "--port", str(port), "--data-dir",
                                 str(data_dir), "--log-level", log_level],
                                cwd=repo, env=snapdex_env(data_dir, **env), stdout=fh, stderr=subprocess.STDOUT)
    service = Service(proc, f"http://127.0.0.1:{port}", log, auth("default") if tenants is not None else {})
    try:
        def up():
            if proc.poll() is not None:
                raise RuntimeError(f"snapdex serve exited ({proc.returncode}):\n{service.logs()}")
            try:
                return service.client.get("/health").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, 120, "snapdex serve")
        yield service
    finally:
        _stop(proc)


def parse_children(pid: int) -> list[int]:
    """The parse child processes (ingest/parse_child.py) a process has started."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                if b"ingest.parse_child" in Path(f"/proc/{child}/cmdline").read_bytes():
                    out.append(int(child))
            except FileNotFoundError:  # ended meanwhile
                continue
    return out


@contextmanager
def snapdex_worker(data_dir: Path, name: str, *args: str, **env: str) -> Iterator[subprocess.Popen]:
    log = data_dir.parent / f"worker-{name}.log"
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "snapdex", "worker", "--pool", "threads", "--concurrency", "1",
                                 "--hostname", f"{name}@%h", "--log-level", "warning", *args],
                                cwd=REPO, env=snapdex_env(data_dir, **env), stdout=fh, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        _stop(proc)


def postgres_bin() -> Path | None:
    """The newest PostgreSQL server binaries from Debian's packages (postgresql-NN), or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name)
                   if p.parent.parent.name.isdigit() else 0)
    return found[-1].parent if found else None


class PostgresServer:
    """A throwaway PostgreSQL cluster: initdb + pg_ctl in a temporary folder, on a free port of 127.0.0.1."""

    def __init__(self, port: int, folder: Path) -> None:
        self.port, self.folder = port, folder

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://snapdex@127.0.0.1:{self.port}/{database}"

    def _admin(self):
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, user="snapdex", dbname="postgres", autocommit=True)

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its URL."""
        name = name or f"t_{os.urandom(6).hex()}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


TEST_DURABILITY = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


@contextmanager
def postgres_server(max_connections: int = 300, settings: dict[str, str] | None = None) -> Iterator[PostgresServer]:
    """Started from Debian's postgresql package, as the `postgres` user when run as root (initdb refuses root). By
    default durability is off (fsync, synchronous commit): this cluster lives as long as the tests; `settings`
    overrides it (the benchmarks keep fsync). Skips where the package is absent."""
    import tempfile

    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (Debian package postgresql; .ci/run installs it)")
    # Not under pytest's tmp_path: that folder is private to root, and the server runs as postgres.
    folder = Path(tempfile.mkdtemp(prefix="snapdex-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        import pwd

        pw = pwd.getpwnam("postgres")
        os.chown(folder, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, log = folder / "data", folder / "server.log"
    port = free_port()
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "snapdex", "--auth=trust",
                    "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"], check=True, capture_output=True)
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections={max_connections}"
    for name, value in {**TEST_DURABILITY, **(settings or {})}.items():
        options += f" -c {name}={value}"
    server = PostgresServer(port, folder)
    try:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
                        "-o", options, "start"], check=True, capture_output=True)
        yield server
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
