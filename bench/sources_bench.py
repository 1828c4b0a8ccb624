"""A folder source of 10,000 files: the first sync, then a re-sync with 1 % of the files edited (issue 37).

1. A folder of N text files (distinct sentences from a seeded vocabulary: no two files share a chunk), a folder source
   on it; the first sync -> its wall time and the texts it sent to the embedder.
2. 1 % of the files rewritten with new text (new mtime, size and content), the same source synced again -> its wall
   time as a fraction of the first (target <= 5 %), and the texts it sent to the embedder, against exactly the
   texts of the edited files' chunks (and of their sentence windows embedded alone) that were never embedded before.

The syncs run in this process through the same Syncer the service's task runs (sources/sync.py): listing, the diff
against the recorded versions, reading and hashing what changed, the ingest jobs (parse in the parse child, chunk,
embed, catalog). The snapshot build that follows a sync is not part of it (bench/snapshot_bench.py measures builds).
`--embedder fake` (default): the deterministic hashing embedder of the tests, so the figures are the sync's own cost
and a 10,000-file first sync fits a shared 2-core machine (the real model embeds ~25 texts/s there: the first sync
would take ~10 min of model time alone, and its share would only make the ratio smaller). `--embedder real`: the
service's own model and backend.

Usage: .venv/bin/python bench/sources_bench.py [--files 10000] [--changed-pct 1] [--embedder fake|real]
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import machine, write_result  # noqa: E402

WORDS = 4000  # vocabulary of made-up words: enough that no two files' sentences repeat
TENANT = "default"


def vocabulary(rng: random.Random) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return sorted({"".join(rng.choice(letters) for _ in range(rng.randint(4, 10))) for _ in range(WORDS)})


def file_text(rng: random.Random, words: list[str], n: int, version: int) -> str:
    """A note of two short paragraphs (one chunk at the default chunk size), unique to file `n` at `version`."""
    sentences = [f"Record {n} version {version} sentence {i}: " + " ".join(rng.choice(words) for _ in range(12)) + "."
                 for i in range(rng.randint(3, 6))]
    return "\n\n".join(" ".join(sentences[i : i + 3]) for i in range(0, len(sentences), 3)) + "\n"


def run_sync(rt, source_id: str) -> tuple[float, dict, int]:
    """(wall seconds, the sync's counts, texts the embedder was given during it)."""
    before = embedded_count(rt)
    started = time.perf_counter()
    sync_id = rt.syncer.start(TENANT, source_id)
    status = rt.syncer.run(sync_id)
    wall = time.perf_counter() - started
    row = rt.sources.sync(sync_id)
    if status != "succeeded":
        raise SystemExit(f"sync {sync_id} {status}: {row.error} {row.failures[:3]}")
    return wall, {**row.counts, "chunks_embedded": rt.sources.chunks_embedded(row.job_ids), "jobs": len(row.job_ids)}, \
        embedded_count(rt) - before


def embedded_count(rt) -> int:
    """Texts the embedder has been given so far (the fake counts them itself; the real one is wrapped)."""
    return rt.embedder.texts_embedded


class Counting:
    """The service's embedder, counting the texts it is given (the fake embedder counts its own)."""

    def __init__(self, inner) -> None:
        self._inner, self.texts_embedded = inner, 0

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def embed(self, texts):
        self.texts_embedded += len(texts)
        return self._inner.embed(texts)

    def embed_spans(self, texts, spans):
        self.texts_embedded += len(texts)
        return self._inner.embed_spans(texts, spans)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--files", type=int, default=10_000)
    p.add_argument("--changed-pct", type=float, default=1.0)
    p.add_argument("--embedder", choices=("fake", "real"), default="fake")
    p.add_argument("--seed", type=int, default=37)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "sources.json")
    args = p.parse_args()
    if args.files < 1 or not 0 < args.changed_pct <= 100:
        raise SystemExit("--files must be >= 1 and --changed-pct in (0, 100]")

    from encoders.dense import HashEmbedder
    from encoders.embedding import open_embedder
    from snapdex.runtime import Runtime
    from snapdex.settings import Settings
    from harness.helpers import embedded_texts

    work = Path(tempfile.mkdtemp(prefix="snapdex-sources-bench-"))
    root, folder = work / "roots", work / "roots" / "docs"
    folder.mkdir(parents=True)
    rng = random.Random(args.seed)
    words = vocabulary(rng)
    for n in range(args.files):
        (folder / f"d{n // 1000:02d}").mkdir(exist_ok=True)
        (folder / f"d{n // 1000:02d}" / f"file{n:05d}.txt").write_text(file_text(rng, words, n, 0))
    files = sorted(folder.rglob("*.txt"))

    settings = Settings(data_dir=work / "data", source_folder_roots=[root])
    embedder = HashEmbedder(dim=384) if args.embedder == "fake" else Counting(open_embedder(
        settings.embedder_backend, settings.embedding_model_path, settings.models_path,
        batch_size=settings.embedding_batch_size))
    rt = Runtime(settings, embedder=embedder)
    try:
        source_id = rt.sources.create(TENANT, "bench", "folder", {"path": str(folder)}, {}, None, {}, None, None).id
        first_s, first, first_texts = run_sync(rt, source_id)
        print(f"first sync: {first_s:.1f} s, {first}", flush=True)

        edited = rng.sample(files, max(1, round(len(files) * args.changed_pct / 100)))
        time.sleep(0.01)  # a later mtime than the first sync recorded, even on a coarse clock
        for path in edited:
            path.write_text(file_text(rng, words, files.index(path), 1))
        resync_s, resync, resync_texts = run_sync(rt, source_id)
        print(f"re-sync: {resync_s:.2f} s, {resync}", flush=True)

        # What the edited files must send to the model: their chunks and windows, none of which was embedded before.
        expected = set().union(*(embedded_texts(rt, TENANT, f"{source_id}:{p.relative_to(folder)}") for p in edited))
        ratio = resync_s / first_s
        result = {
            "machine": machine(), "embedder": args.embedder if args.embedder == "fake" else settings.embedder_backend,
            "embedder_model": embedder.model_id, "files": args.files, "edited": len(edited),
            "first_sync_s": round(first_s, 2), "first_counts": first, "first_texts_embedded": first_texts,
            "resync_s": round(resync_s, 3), "resync_counts": resync, "resync_texts_embedded": resync_texts,
            "edited_files_texts": len(expected), "resync_fraction_of_first": round(ratio, 4),
            "target_fraction": 0.05, "met": ratio <= 0.05 and resync_texts == len(expected),
        }
        write_result(args.out, result)
        if resync["changed"] != len(edited) or resync["unchanged"] != args.files - len(edited):
            raise SystemExit(f"the re-sync counted {resync}, not {len(edited)} changed")
        if resync_texts != len(expected):
            raise SystemExit(f"the re-sync embedded {resync_texts} texts, the edited files hold {len(expected)}")
    finally:
        rt.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
