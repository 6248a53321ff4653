"""Any OpenAI-compatible chat endpoint (``base_url``, key, model) as the generator."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

import openai

from schemas.errors import RaglineError, TransientError
from schemas.retrieval import Generation, RetrievedChunk

_CITATION = re.compile(r"\[(\d{1,3})\]")


class GenerationError(RaglineError):
    """The chat endpoint rejected the request (not worth retrying)."""


class OpenAIChatGenerator:
    def __init__(self, model: str, api_key: str | None, base_url: str | None = None, timeout_s: float = 60.0,
                 max_retries: int = 2, temperature: float = 0.0, max_tokens: int = 512,
                 http_client: Any | None = None) -> None:
        self.model = model
        self.model_version = f"openai-chat:{model}"
        self._temperature = temperature
        self._max_tokens = max_tokens
        self._client = openai.OpenAI(api_key=api_key or "unset", base_url=base_url, timeout=timeout_s,
                                     max_retries=max_retries, http_client=http_client)

    def generate(self, query: str, chunks: Sequence[RetrievedChunk], messages: list[dict[str, str]]) -> Generation:
        response = self._call(stream=False, messages=messages)
        text = response.choices[0].message.content or ""
        usage = response.usage
        return Generation(
            text=text, cited_ranks=_cited(text, len(chunks)), model_version=f"openai-chat:{response.model}",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
        )

    def stream(self, query: str, chunks: Sequence[RetrievedChunk],
               messages: list[dict[str, str]]) -> Iterator[str | Generation]:
        """Closing this generator early (a client gone) closes the HTTP stream to the endpoint."""
        parts: list[str] = []
        prompt_tokens = completion_tokens = 0
        model = self.model
        with self._call(stream=True, messages=messages) as events:
            for event in events:
                model = event.model or model
                if event.usage:
                    prompt_tokens, completion_tokens = event.usage.prompt_tokens, event.usage.completion_tokens
                for choice in event.choices:
                    if choice.delta and choice.delta.content:
                        parts.append(choice.delta.content)
                        yield choice.delta.content
        text = "".join(parts)
        yield Generation(text=text, cited_ranks=_cited(text, len(chunks)), model_version=f"openai-chat:{model}",
                         prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)

    def _call(self, *, stream: bool, messages: list[dict[str, str]]) -> Any:
        extra: dict[str, Any] = {"stream_options": {"include_usage": True}} if stream else {}
        try:
            return self._client.chat.completions.create(
                model=self.model, messages=messages, temperature=self._temperature,  # type: ignore[arg-type]
                max_tokens=self._max_tokens, stream=stream, **extra,
            )
        except (openai.RateLimitError, openai.APIConnectionError, openai.APITimeoutError,
                openai.InternalServerError) as exc:
            raise TransientError(f"chat endpoint unavailable: {exc}") from exc
        except openai.APIStatusError as exc:
            raise GenerationError(f"chat endpoint rejected the request ({exc.status_code}): {exc.message}") from exc


def _cited(text: str, available: int) -> list[int]:
    return sorted({int(n) for n in _CITATION.findall(text) if 1 <= int(n) <= available})
