"""FakeOpenAIChatServer: stands in for a paid OpenAI-compatible chat endpoint (no real one
runs here). A real HTTP server on a free local port: it streams chat-completion chunks
slowly, like an LLM, and records whether its client went away before the end."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeOpenAIChatServer:
    """``/v1/chat/completions``; a stream is ``chunks`` deltas ``interval_s`` apart, then usage and [DONE]."""

    def __init__(self, chunks: int = 100, interval_s: float = 0.1) -> None:
        self.chunks = chunks
        self.interval_s = interval_s
        self.streams_started = threading.Event()
        self.first_chunk_sent = threading.Event()
        self.disconnected = threading.Event()  # a client closed its stream before the end
        self.completed = threading.Event()  # a stream was written to the end
        self.chunks_sent = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-openai", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAIChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def chunk(self, model: str, delta: dict[str, Any], usage: dict[str, int] | None = None) -> bytes:
        body: dict[str, Any] = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model,
                                "choices": [{"index": 0, "delta": delta, "finish_reason": None}] if delta else []}
        if usage:
            body["usage"] = usage
        return f"data: {json.dumps(body)}\n\n".encode()


def _handler(fake: FakeOpenAIChatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
            pass

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
            model = request.get("model", "fake")
            if not request.get("stream"):
                self._json({"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
                            "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": "A fake answer [1]."}}],
                            "usage": {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14}})
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            fake.streams_started.set()
            try:
                for i in range(fake.chunks):
                    self.wfile.write(fake.chunk(model, {"content": f"word{i} " if i else "Fake answer [1] "}))
                    self.wfile.flush()
                    fake.chunks_sent = i + 1
                    fake.first_chunk_sent.set()
                    time.sleep(fake.interval_s)
                usage = {"prompt_tokens": 10, "completion_tokens": fake.chunks, "total_tokens": 10 + fake.chunks}
                self.wfile.write(fake.chunk(model, {}, usage) + b"data: [DONE]\n\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                fake.disconnected.set()
                return
            fake.completed.set()

        def _json(self, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
