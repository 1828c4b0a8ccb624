"""BEIR-format datasets: corpus.jsonl, queries.jsonl and qrels/<split>.tsv (query-id, corpus-id, score)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator


def corpus_documents(path: Path) -> Iterator[dict]:
    """Ingest-ready documents of a BEIR corpus.jsonl: the title leads the text (it names the topic) and is kept
    as metadata."""
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            d = json.loads(line)
            title, text = (d.get("title") or "").strip(), d.get("text") or ""
            yield {"id": str(d["_id"]), "text": f"{title}\n\n{text}" if title else text,
                   "metadata": {"title": title} if title else {}}


@dataclass(frozen=True)
class BeirDataset:
    path: Path

    def __post_init__(self) -> None:
        for part in ("corpus.jsonl", "queries.jsonl", "qrels"):
            if not (self.path / part).exists():
                raise ValueError(f"{self.path} is not a BEIR dataset: {part} is missing")

    @property
    def name(self) -> str:
        return self.path.resolve().name

    def splits(self) -> list[str]:
        return sorted(p.stem for p in (self.path / "qrels").glob("*.tsv"))

    def documents(self) -> Iterator[dict]:
        return corpus_documents(self.path / "corpus.jsonl")

    def qrels(self, split: str) -> dict[str, dict[str, int]]:
        path = self.path / "qrels" / f"{split}.tsv"
        if not path.exists():
            raise ValueError(f"split {split!r} not found in {self.path / 'qrels'}; have {self.splits()}")
        qrels: dict[str, dict[str, int]] = {}
        with path.open(encoding="utf-8", newline="") as fh:
            rows = csv.reader(fh, delimiter="\t")
            header = next(rows, None)
            if header and header[-1].strip().lstrip("-").isdigit():  # no header line: the first row is data
                rows = iter([header, *rows])
            for row in rows:
                if len(row) >= 3 and int(row[2]) > 0:
                    qrels.setdefault(row[0], {})[row[1]] = int(row[2])
        return qrels

    def queries(self, ids: set[str] | None = None) -> dict[str, str]:
        out = {}
        with (self.path / "queries.jsonl").open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    q = json.loads(line)
                    if ids is None or str(q["_id"]) in ids:
                        out[str(q["_id"])] = q["text"]
        return out
