from ingest.chunking import Chunker, ChunkerConfig
from ingest.dedup import NearDuplicateIndex, from_bytes, minhash, to_bytes
from ingest.normalize import content_hash

import pytest

BASE = " ".join(f"word{i} appears in sentence number {i} of this long test document." for i in range(120))


def test_content_hash_ignores_layout_only():
    assert content_hash("Hello   world\n\n") == content_hash(" Hello world")
    assert content_hash("Hello world") != content_hash("Hello World")


def test_near_duplicate_found_above_threshold_and_not_below():
    index = NearDuplicateIndex(threshold=0.8, num_perm=128)
    index.add("a", minhash(BASE, 128))
    edited = BASE.replace("word7 ", "wordseven ", 1)
    assert index.find(minhash(edited, 128)) == "a"
    assert index.find(minhash(edited, 128), exclude="a") is None
    other = " ".join(f"token{i} differs entirely in document {i * 7}." for i in range(120))
    assert index.find(minhash(other, 128)) is None


def test_minhash_round_trips_through_bytes():
    m = minhash(BASE, 64)
    assert from_bytes(to_bytes(m), 64).jaccard(m) == 1.0
    with pytest.raises(ValueError, match="permutations"):
        from_bytes(to_bytes(m), 128)


def test_minhash_with_shared_permutations_is_datasketchs_own():
    """The permutations are made once per size and shared: every signature is the one a fresh MinHash gives."""
    import numpy as np
    from datasketch.minhash import MinHash

    from ingest.dedup import SCHEME

    for text in ("Vitamin D deficiency is common in winter and bone density falls", "short", ""):
        words = text.lower().split()
        fresh = MinHash(num_perm=64, scheme=SCHEME)
        fresh.update_batch([" ".join(words[i:i + 3]).encode() for i in range(max(1, len(words) - 2))])
        assert np.array_equal(minhash(text, 64).hashvalues, fresh.hashvalues)
    assert len(minhash("a b c", 32).hashvalues) == 32


def test_prose_chunks_respect_size_and_overlap():
    chunker = Chunker(ChunkerConfig(chunk_size=64, chunk_overlap=8))
    chunks = chunker.chunk(BASE, structured=False)
    assert len(chunks) > 5
    assert all(len(c.split()) < 80 for c in chunks)
    assert "word0" in chunks[0] and "word119" in chunks[-1]


def test_markdown_chunks_follow_headings_and_merge_tiny_sections():
    text = "# Guide\n\n## Install\n\nRun the installer and wait.\n\n## Use\n\n" + ("Call the API. " * 200)
    chunks = Chunker(ChunkerConfig(chunk_size=128, chunk_overlap=16)).chunk(text, structured=True)
    assert chunks[0].startswith("# Guide") and "Run the installer" in chunks[0]
    assert any(c.startswith("## Use") for c in chunks)


def test_chunker_config_rejects_bad_values():
    with pytest.raises(ValueError, match="chunk_overlap=64"):
        ChunkerConfig(chunk_size=64, chunk_overlap=64)
    with pytest.raises(ValueError, match="chunk_size=8"):
        ChunkerConfig(chunk_size=8, chunk_overlap=0)


def test_serving_imports_neither_llama_index_nor_datasketch():
    """llama-index and datasketch (with scipy) cost ~2 s and ~60 MB of RSS: an API process that only answers queries
    must not load them. The chunker's fingerprint, which every snapshot hash covers, reads the installed version."""
    import subprocess
    import sys
    from importlib.metadata import version
    from pathlib import Path

    code = ("import sys, api.main, workers.tasks; from ingest.chunking import ChunkerConfig; "
            "print(ChunkerConfig().canonical()['library']); "
            "loaded = sorted(m for m in ('llama_index', 'datasketch', 'scipy') if m in sys.modules); print(loaded); "
            "sys.exit(1 if loaded else 0)")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[0] == f"llama-index-core-{version('llama-index-core')}"
    # ...and they still load on first use.
    assert Chunker(ChunkerConfig(chunk_size=64, chunk_overlap=8)).chunk(BASE, structured=False)
    assert minhash(BASE, 16).jaccard(minhash(BASE, 16)) == 1.0
