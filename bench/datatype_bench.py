"""How vectors are stored (SNAPDEX_VECTOR_DATATYPE), side by side: SciFact quality and, at 100k chunks, the peak RSS
and /retrieve latency of one `snapdex serve`.

For each datatype, a data folder of its own under --work starts from a copy of --data-dir's catalog and embedding
cache (an index `snapdex eval run` made there), so nothing is embedded again: `snapdex eval run` rebuilds SciFact's
snapshot with that datatype and scores the test split (every variant), then bench/retrieve_bench.py's synthetic
100k snapshot is written from it. Then, in turns (--rounds), a fresh server per datatype answers the 300 test
queries twice, first stage and default pipeline in turns as bench/peer_bench.py times systems (the first pass is a
warm-up), and its peak RSS (VmHWM) is read at the end.

Usage: .venv/bin/python bench/datatype_bench.py --data-dir ./eval-data --work /tmp/dt [--datatypes float16 turbo8]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import machine, write_result  # noqa: E402
from bench.peer_bench import PASSES, Server, take_turns, turn_pads  # noqa: E402
from bench.retrieve_bench import BIG, SCIFACT, build_synthetic  # noqa: E402

MODES = {"first stage": {"rerank": "none"}, "default": {}}
TIMED = tuple(p for p in PASSES if p[0] != "quality")  # quality is scored by `snapdex eval run`
SEEDED = ("catalog.sqlite3", "embeddings.sqlite3", "webhook-secret.key", "models")


def prepare(source: Path, data: Path, datatype: str, synthetic: int) -> dict:
    """A data folder seeded from `source`; SciFact rebuilt with `datatype` and scored; the synthetic index made."""
    if data.exists():
        shutil.rmtree(data)
    data.mkdir(parents=True)
    for name in SEEDED:
        src = source / name
        if src.is_dir():
            shutil.copytree(src, data / name)
        elif src.exists():
            shutil.copy2(src, data / name)
    env = {**os.environ, "SNAPDEX_VECTOR_DATATYPE": datatype, "SNAPDEX_DATA_DIR": str(data), "HF_HUB_OFFLINE": "1"}
    out = data.parent / f"eval-{datatype}.json"
    subprocess.run([sys.executable, "-m", "snapdex", "eval", "run", "--dataset", str(SCIFACT), "--split", "test",
                    "--json", str(out)], cwd=REPO, env=env, check=True)
    build_synthetic(data, "eval-scifact", synthetic, vector_datatype=datatype)
    return json.loads(out.read_text())


def serve(data: Path, datatype: str, queries: dict[str, str], log: Path) -> dict:
    """One server of `datatype`: both modes in turns, query by query, as bench/peer_bench.py times systems (a
    warm-up pass, then the timed one); its peak RSS after."""
    svc = Server(data, log, SNAPDEX_VECTOR_DATATYPE=datatype, SNAPDEX_DEFAULT_TENANT=BIG)
    try:
        systems = {mode: svc.search(options, {}) for mode, options in MODES.items()}
        answers = take_turns(systems, queries, turn_pads(systems), passes=TIMED)
        rss = svc.rss_mib()
    finally:
        svc.stop()
    return {"rss_mib": rss, **{mode: answers[mode]["latency_ms"] for mode in MODES}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, required=True, help="holds an index `snapdex eval run` made")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--datatypes", nargs="+", default=["float16", "turbo8"])
    ap.add_argument("--synthetic", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "datatypes.json")
    args = ap.parse_args()
    lines = [json.loads(line) for line in (SCIFACT / "queries.jsonl").open()][:300]
    queries = {q["_id"]: q["text"] for q in lines}
    result: dict = {"machine": machine(), "synthetic_chunks": args.synthetic, "datatypes": {}}
    for dt in args.datatypes:
        quality = prepare(args.data_dir, args.work / dt / "data", dt, args.synthetic)
        result["datatypes"][dt] = {"scifact_test": quality, "rounds": []}
    for r in range(args.rounds):
        for dt in args.datatypes:
            got = serve(args.work / dt / "data", dt, queries, args.work / f"serve-{dt}-{r}.log")
            result["datatypes"][dt]["rounds"].append(got)
            print(f"round {r + 1} {dt}: peak RSS {got['rss_mib']['peak']:,.0f} MiB; first stage p50/p95 "
                  f"{got['first stage']['p50']} / {got['first stage']['p95']} ms; default "
                  f"{got['default']['p50']} / {got['default']['p95']} ms", flush=True)
    write_result(args.out, result)


if __name__ == "__main__":
    main()
