"""What near-duplicate detection adds to ingest, per chunk; and rensa against datasketch.

Run: ``python bench/dedup.py [--chunks 5000] [--per-document 10] [--database-url URL]
[--compare]``.

Chunks: the abstracts of BEIR SciFact (``../shared/corpora/retrieval/scifact``, title and
text, 150-300 words each: chunk-sized real prose), plus one copy in twenty with one word
changed and the case folded, so that matches are found and recorded too. They are grouped
into documents of ``--per-document`` chunks and go through the stage exactly as
``IngestPipeline`` runs it, on a fresh migrated database (SQLite under a temporary folder,
or ``--database-url``): sketch (normalize, shingle, rensa MinHash, band keys) and match
(LSH band lookup in SQL, signatures compared) before embedding, match again at the write,
then record the rows. Each document is registered as indexed after its rows, untimed.
Printed: microseconds per chunk for each step and in all, against the offline model's
time per chunk on this machine (MiniLM int8, batches of 16, every core) over the first 96
chunks. The machine may be shared: the load average is printed before and after.

``--compare`` first times the MinHash libraries on the same texts: rensa 0.5
(``RMinHash.digests_from_token_sets``, what ragline uses) and datasketch 2.0
(``MinHash.update_batch`` per text, and ``MinHash.bulk``), 128 permutations each, and
datasketch's ``MinHashLSH`` against rensa's ``RMinHashLSH`` (insert + query). datasketch
is not a ragline dependency: ``pip install datasketch`` to include it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest.dedup import DedupConfig  # noqa: E402
from ingest.dedup.detector import NearDuplicates  # noqa: E402
from ingest.dedup.store import SignatureStore  # noqa: E402
from ingest.registry import DocumentRegistry  # noqa: E402
from schemas import ids  # noqa: E402
from schemas.passages import passage_key, word_shingles  # noqa: E402
from services.db import make_engine, migrate  # noqa: E402

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "retrieval" / "scifact"
COLLECTION = "bench-dedup"
SEED = 7


def chunk_texts(folder: Path, n: int) -> list[str]:
    """``n`` abstracts (title + text), one in twenty followed by a near copy of an earlier one."""
    rng = random.Random(SEED)
    texts: list[str] = []
    with (folder / "corpus.jsonl").open(encoding="utf-8") as f:
        for line in f:
            if len(texts) >= n:
                break
            doc = json.loads(line)
            texts.append(f"{doc.get('title', '')}\n\n{doc['text']}".strip())
            if len(texts) % 20 == 0 and len(texts) < n:
                words = rng.choice(texts).split()
                words[rng.randrange(len(words))] = "changed"
                texts.append(" ".join(words).upper())
    return texts


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def per_chunk(seconds: float, n: int) -> float:
    return seconds / max(n, 1) * 1e6


def compare(texts: Sequence[str]) -> None:
    import rensa

    shingles = [list(word_shingles(passage_key(t))) for t in texts]
    t0 = time.perf_counter()
    for t in texts:
        word_shingles(passage_key(t))
    fold = time.perf_counter() - t0
    t0 = time.perf_counter()
    for x in shingles:
        one = rensa.RMinHash(128, 42)
        one.update(x)
        one.digest()
    sig = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows = rensa.RMinHash.digests_from_token_sets(shingles, 128, 42)
    batch = time.perf_counter() - t0
    print(f"fold + shingle (shared by both): {per_chunk(fold, len(texts)):.1f} us/chunk "
          f"({sum(map(len, shingles)) / len(texts):.0f} shingles)")
    print(f"rensa RMinHash.update per text (ragline's call): {per_chunk(sig, len(texts)):.1f} us/chunk; "
          f"digests_from_token_sets (one batch, its own thread pool): {per_chunk(batch, len(texts)):.1f} us/chunk")
    lsh = rensa.RMinHashLSH(0.9, 128, 16)
    minhashes = rensa.RMinHash.from_token_sets(shingles, 128, 42)
    t0 = time.perf_counter()
    for i, m in enumerate(minhashes):
        lsh.query(m)
        lsh.insert(i, m)
    print(f"rensa RMinHashLSH (16 bands) query + insert: {per_chunk(time.perf_counter() - t0, len(texts)):.1f} "
          f"us/chunk (in memory)")
    assert len(rows) == len(texts)
    try:
        import datasketch
    except ImportError:
        print("datasketch: not installed (pip install datasketch to compare)")
        return
    encoded = [[s.encode("utf-8") for s in x] for x in shingles]
    t0 = time.perf_counter()
    singles = []
    for x in encoded:
        m = datasketch.MinHash(num_perm=128)
        m.update_batch(x)
        singles.append(m)
    one = time.perf_counter() - t0
    t0 = time.perf_counter()
    datasketch.MinHash.bulk(encoded, num_perm=128)
    bulk = time.perf_counter() - t0
    print(f"datasketch MinHash.update_batch: {per_chunk(one, len(texts)):.1f} us/chunk; "
          f"MinHash.bulk: {per_chunk(bulk, len(texts)):.1f} us/chunk")
    index = datasketch.MinHashLSH(threshold=0.9, num_perm=128)
    t0 = time.perf_counter()
    for i, m in enumerate(singles):
        index.query(m)
        index.insert(i, m)
    print(f"datasketch MinHashLSH (b={index.b}, r={index.r}) query + insert: "
          f"{per_chunk(time.perf_counter() - t0, len(texts)):.1f} us/chunk (in memory)")


def model_us_per_chunk(texts: Sequence[str]) -> float:
    from ingest.embed.local import LocalMiniLMEmbedder

    model = LocalMiniLMEmbedder()
    sample = list(texts[:96])
    model.embed_batch(sample[:16])  # warm-up
    t0 = time.perf_counter()
    for i in range(0, len(sample), 16):
        model.embed_batch(sample[i : i + 16])
    return per_chunk(time.perf_counter() - t0, len(sample))


def stage(texts: Sequence[str], per_document: int, url: str) -> tuple[dict[str, float], int]:
    """Seconds spent in each step over every chunk, and the copies found."""
    engine = make_engine(url)
    migrate(engine)
    duplicates = NearDuplicates(SignatureStore(engine), DedupConfig())
    registry = DocumentRegistry(engine)
    spent = {"sketch": 0.0, "match (before embedding)": 0.0, "match (at the write)": 0.0, "record": 0.0}
    found = 0

    def timed(step: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        out = fn()
        spent[step] += time.perf_counter() - t0
        return out

    for start in range(0, len(texts), per_document):
        doc, version = f"doc-{start // per_document}", f"v{start}"
        chunks = texts[start : start + per_document]
        chunk_ids = [ids.chunk_id("bench", doc, version, "fp", i) for i in range(len(chunks))]
        hashes = [ids.text_hash(t) for t in chunks]
        sketches = timed("sketch", lambda c=chunks: duplicates.sketch(c, COLLECTION, ()))
        timed("match (before embedding)",
              lambda d=doc, c=chunk_ids, h=hashes, s=sketches: duplicates.match("bench", d, c, h, s))
        matches = timed("match (at the write)",
                        lambda d=doc, c=chunk_ids, h=hashes, s=sketches: duplicates.match("bench", d, c, h, s))
        timed("record", lambda d=doc, v=version, c=chunk_ids, h=hashes, s=sketches, m=matches: duplicates.record(
            "bench", COLLECTION, d, v, c, h, s, m))
        found += sum(m is not None for m in matches)
        registry.record_indexed(tenant="bench", document_id=doc, version=version, source_uri=f"mem://{doc}",
                                media_type="text/plain", pipeline_fingerprint="fp", collection=COLLECTION,
                                chunk_count=len(chunks), access_tags=[], title=None, metadata={})
    engine.dispose()
    return spent, found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SCIFACT)
    parser.add_argument("--chunks", type=int, default=5000)
    parser.add_argument("--per-document", type=int, default=10)
    parser.add_argument("--database-url", help="default: SQLite in a temporary folder")
    parser.add_argument("--compare", action="store_true", help="time rensa and datasketch first")
    args = parser.parse_args(argv)
    texts = chunk_texts(args.data, args.chunks)
    print(f"{len(texts)} chunks, {args.per_document} per document; load before: {load()}")
    if args.compare:
        compare(texts)
    with tempfile.TemporaryDirectory(prefix="ragline-bench-dedup-") as tmp:
        spent, found = stage(texts, args.per_document, args.database_url or f"sqlite:///{tmp}/ragline.db")
    total = sum(spent.values())
    backend = (args.database_url or "sqlite").split(":", 1)[0]
    print(f"near-duplicate stage on {backend}: {found} copies found")
    for step, seconds in spent.items():
        print(f"  {step}: {per_chunk(seconds, len(texts)):.1f} us/chunk")
    model = model_us_per_chunk(texts)
    print(f"  in all: {per_chunk(total, len(texts)):.1f} us/chunk; the model: {model:.0f} us/chunk "
          f"(MiniLM int8, batches of 16) -> {100 * per_chunk(total, len(texts)) / model:.1f}% of embedding")
    print(f"load after: {load()}")


if __name__ == "__main__":
    main()
