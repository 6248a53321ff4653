"""The offline embedding models side by side: ``ragline eval`` per mode on BEIR SciFact, and
embedding throughput on this machine.

Run: ``python bench/embedders.py [--data ../shared/corpora/retrieval/scifact] [--docs 1200]
[--model minilm --model multilingual-e5-small] [--home DIR] [--speed-only]``.

Quality: every model is evaluated on the same deterministic subset of the corpus (every
document judged relevant to a test query, plus a seeded sample of the others up to
``--docs``; ``--docs 0`` is the whole corpus), since the slowest model needs most of an hour
for all 5,183 abstracts on 2 shared cores. A subset has fewer distractors than the corpus,
so its figures run higher than full-corpus ones: compare models with each other here, not
with published numbers. Each model keeps its home under ``--home`` (default
``~/.cache/ragline/bench/embedders``), so a rerun embeds nothing.

Speed: the first 96 abstracts (title + text, as ingested), batches of 16, every core,
after one warm-up batch: passages/s and model tokens/s (each model's own tokens, up to its
window), with the load average before and after (the machine may be shared). No assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest.embed.local import LOCAL_MODELS, open_local_embedder  # noqa: E402
from retrieval.retriever import query_vector  # noqa: E402
from services.evaluation import METRICS, load_beir, run_eval  # noqa: E402
from services.settings import EmbeddingSettings, Settings  # noqa: E402

SEED = 12
SPEED_TEXTS = 96
BATCH = 16


def subset(folder: Path, out: Path, docs: int, split: str = "test") -> Path:
    """The judged documents of ``split`` plus a seeded sample of the rest, ``docs`` in all."""
    dataset = load_beir(folder, split)
    judged = {d for rels in dataset.qrels.values() for d in rels}
    ids = [str(d["_id"]) for d in dataset.corpus()]
    others = sorted(set(ids) - judged)
    keep = judged | set(random.Random(SEED).sample(others, max(0, min(len(others), docs - len(judged)))))
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    with (out / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for doc in dataset.corpus():
            if str(doc["_id"]) in keep:
                f.write(json.dumps(doc) + "\n")
    for name in ("queries.jsonl", f"qrels/{split}.tsv"):
        (out / name).write_bytes((folder / name).read_bytes())
    return out


def speed(name: str, folder: Path) -> dict[str, float]:
    texts = []
    for doc in load_beir(folder).corpus():
        texts.append(f"# {doc.get('title', '')}\n\n{doc.get('text', '')}")
        if len(texts) == SPEED_TEXTS:
            break
    embedder = open_local_embedder(name)
    tokens = sum(min(n, embedder.max_input_tokens) for n in embedder.count_tokens(texts))
    embedder.embed_batch(texts[:BATCH])
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    for i in range(0, len(texts), BATCH):
        embedder.embed_batch(texts[i:i + BATCH])
    elapsed = time.perf_counter() - started
    query_started = time.perf_counter()
    for text in texts[:16]:
        query = text.split("\n")[0][2:]
        query_vector(embedder, query)
    query_ms = (time.perf_counter() - query_started) / 16 * 1000
    return {"passages_per_s": len(texts) / elapsed, "tokens_per_s": tokens / elapsed,
            "mean_tokens": tokens / len(texts), "query_ms": query_ms,
            "load_before": load_before, "load_after": os.getloadavg()[0]}


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ragline" / "bench" / "embedders"
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=here.parent / "shared" / "corpora" / "retrieval" / "scifact")
    parser.add_argument("--docs", type=int, default=1200, help="documents in the subset (0: the whole corpus)")
    parser.add_argument("--model", action="append", choices=sorted(LOCAL_MODELS), help="default: every model")
    parser.add_argument("--home", type=Path, default=cache)
    parser.add_argument("--speed-only", action="store_true")
    args = parser.parse_args()
    models = args.model or sorted(LOCAL_MODELS, key=lambda n: n != EmbeddingSettings().local_model)

    print(f"embedding speed, {SPEED_TEXTS} SciFact abstracts, batch {BATCH}, {os.cpu_count()} cores:")
    for name in models:
        s = speed(name, args.data)
        print(f"  {name:<24}{s['passages_per_s']:>7.1f} passages/s{s['tokens_per_s']:>8.0f} tokens/s "
              f"(mean {s['mean_tokens']:.0f} tokens)  query {s['query_ms']:.0f} ms  "
              f"load {s['load_before']:.1f} -> {s['load_after']:.1f}", flush=True)
    if args.speed_only:
        return

    data = args.data if args.docs == 0 else subset(args.data, args.home / f"scifact-{args.docs}", args.docs)
    print(f"\nSciFact test queries over {'all' if args.docs == 0 else args.docs} documents (nDCG@10 etc.):")
    print(f"{'model':<24}{'mode':<16}" + "".join(f"{m:>12}" for m in METRICS) + f"{'run s':>10}")
    for name in models:
        settings = Settings(embedding=EmbeddingSettings(local_model=name))  # type: ignore[arg-type]
        started = time.perf_counter()
        report = run_eval(settings, data, home=args.home / f"{name}-{args.docs}")
        elapsed = time.perf_counter() - started
        for mode, scores in report.modes.items():
            print(f"{name:<24}{mode:<16}" + "".join(f"{scores[m]:>12.4f}" for m in METRICS) + f"{elapsed:>10.0f}",
                  flush=True)


if __name__ == "__main__":
    main()
