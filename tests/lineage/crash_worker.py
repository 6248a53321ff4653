"""A process the crash test SIGKILLs: ``write URL`` records answers in a loop and prints
each answer_id once its transaction committed (what a client would have received);
``stream URL`` begins a streamed answer, prints its id (the client has its first event)
and is killed before finishing it; ``relay URL LAKE`` drains the outbox into Iceberg in
small batches."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from lineage_records import make_answer

from lineage import IcebergLanding, OutboxRelay, SqlLineageStore, default_catalog_properties
from services.db import make_engine


def main(mode: str, url: str, lake: str | None = None) -> None:
    engine = make_engine(url)
    if mode == "write":
        store = SqlLineageStore(engine)
        print("ready", flush=True)
        while True:
            answer = make_answer(documents=("doc-a", "doc-b", "doc-c"))
            store.record_answer(answer)
            print(answer.answer_id, flush=True)
    elif mode == "stream":
        store = SqlLineageStore(engine)
        print("ready", flush=True)
        answer = make_answer(status="streaming", answer_text="", response=None)
        store.begin_stream(answer)
        print(answer.answer_id, flush=True)
        time.sleep(3600)  # mid-stream: the generator is still producing when the kill lands
    else:
        assert lake is not None
        landing = IcebergLanding("test", default_catalog_properties(Path(lake))).open()
        print("ready", flush=True)
        # Small batches make the drain take seconds, so the kill lands mid-drain; once
        # drained, wait to be killed anyway (the test always kills a live process).
        OutboxRelay(engine, landing, batch_size=5).drain()
        print("drained", flush=True)
        time.sleep(3600)


if __name__ == "__main__":
    main(*sys.argv[1:])
