"""Server-sent events of a streamed answer, tied to the client's connection.

The route opens the :class:`AnswerStream` (retrieval done, rows committed with status
``streaming``) before it builds the response, so a lineage failure is a 503 problem
rather than an empty ``200 text/event-stream``. Events are then pulled one at a time in
a worker thread. However the response ends (finished, the client gone, an error), the
answer stream is closed: a finished one is left as it is; one cut short closes the
generator's upstream HTTP stream and is finalized ``incomplete``. Starlette notices a
disconnect while an event is in flight, so the upstream call is released at its next
chunk (at worst its read timeout, ``RAGLINE_GENERATION__TIMEOUT_S``).
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from services.answering import AnswerStream

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering of the events


class AnswerEventStream(StreamingResponse):
    """``lines`` rendered from ``stream``'s events; ``stream`` is closed when the response ends."""

    def __init__(self, stream: AnswerStream, lines: Iterator[str]) -> None:
        super().__init__(lines, media_type="text/event-stream", headers=SSE_HEADERS)
        self.answer_stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):  # runs even when the request was cancelled
                await anyio.to_thread.run_sync(self.answer_stream.close)
