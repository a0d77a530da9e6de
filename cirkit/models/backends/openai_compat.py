"""OpenAI-compatible chat completions over HTTP, with concurrency limits, timeouts and retries.

Images go as base64 data URLs. 429, 5xx, connection errors, timeouts and HTTP-200 bodies that are not JSON
are retried with exponential backoff (honouring Retry-After), within one deadline per request; other 4xx fail
at once. A request that still fails raises BackendError: it is never recorded, so it is never cached as an
answer. A JSON answer of the wrong shape is the server's answer: it becomes a ChatResponse with ``error``
set (counted as a fallback downstream), never an exception that ends the run.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import io
import json
import math
import mimetypes
import os
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx

from ..config import BackendConfig, BackendError, RequestsFailed
from ..requests import ChatRequest, ChatResponse

__all__ = ["OpenAIBackend", "base_url_of", "list_models", "server_snapshot"]


def base_url_of(config: BackendConfig) -> str:
    url = config.base_url or os.environ.get("CIRKIT_BASE_URL") or os.environ.get("OPENAI_BASE_URL") or ""
    if not url:
        raise BackendError("no base URL for the OpenAI-compatible backend: set backend.base_url, $CIRKIT_BASE_URL "
                           "or $OPENAI_BASE_URL (for example http://127.0.0.1:8000/v1)")
    return url.rstrip("/")


def _headers(config: BackendConfig) -> dict[str, str]:
    key = config.api_key or os.environ.get("OPENAI_API_KEY", "")
    return {"Authorization": f"Bearer {key}"} if key else {}


def _data_url(path: str, box) -> str:
    if box is None:
        try:
            data = open(path, "rb").read()
        except OSError as exc:
            raise BackendError(f"{path}: cannot read the image for a request ({exc.strerror})") from None
        mime = mimetypes.guess_type(path)[0] or "image/png"
    else:
        from ...encoders.clip_image import open_image

        buf = io.BytesIO()
        open_image(path, box).save(buf, format="PNG")
        data, mime = buf.getvalue(), "image/png"
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def payload(model: str, request: ChatRequest) -> dict[str, Any]:
    messages = []
    for m in request.messages:
        if m.images:
            content: Any = [{"type": "text", "text": m.text}]
            content += [{"type": "image_url", "image_url": {"url": _data_url(im.path, im.box)}} for im in m.images]
        else:
            content = m.text
        messages.append({"role": m.role, "content": content})
    d = request.decoding
    body = {"model": model, "messages": messages, "max_tokens": d.max_tokens, "temperature": d.temperature,
            "seed": d.seed}
    if d.want_probability:
        body.update(logprobs=True, top_logprobs=10)
    if d.repetition_penalty is not None:  # a vLLM / SGLang sampling parameter beyond the OpenAI API
        body["repetition_penalty"] = d.repetition_penalty
    return body


def _yes_probability(choice: dict) -> float | None:
    """P(yes) from the first generated token's top log-probabilities, renormalised over yes/no."""
    try:
        top = choice["logprobs"]["content"][0]["top_logprobs"]
    except (KeyError, IndexError, TypeError):
        return None
    yes = sum(math.exp(t["logprob"]) for t in top if isinstance(t, dict) and str(t.get("token", "")).strip().lower() == "yes")
    no = sum(math.exp(t["logprob"]) for t in top if isinstance(t, dict) and str(t.get("token", "")).strip().lower() == "no")
    return yes / (yes + no) if yes + no > 0 else None


def read_response(body: Any, requested_model: str) -> ChatResponse:
    """A ChatResponse from whatever JSON came back; malformed answers are recorded, not raised."""
    if not isinstance(body, dict):
        return ChatResponse("", requested_model, error=f"malformed response: a {type(body).__name__}, not an object")
    model = body.get("model") if isinstance(body.get("model"), str) else requested_model
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return ChatResponse("", model, error="malformed response: no choices")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    text = message.get("content")
    if isinstance(text, list):  # content parts
        text = "".join(p.get("text", "") for p in text if isinstance(p, dict) and isinstance(p.get("text", ""), str))
    if not isinstance(text, str):
        return ChatResponse("", model, error="malformed response: message content is not text")
    finish = choice.get("finish_reason") if isinstance(choice.get("finish_reason"), str) else ""
    try:
        prob = _yes_probability(choice)
    except (TypeError, ValueError, OverflowError):
        prob = None
    return ChatResponse(text, model, finish, prob)


# An answer larger than this is not a chat completion; stop reading rather than fill memory.
MAX_ANSWER_BYTES = 64 * 2**20
# Failures in a row (no answer between them) after which a step stops sending requests: a server that is gone
# fails everything, and each failure can take the whole per-request deadline.
GIVE_UP_AFTER = 16
# The longest Retry-After honoured; a server asking for more is waited on only this long.
MAX_RETRY_AFTER = 60.0


class _Transient(Exception):
    """An attempt failed in a way worth retrying; ``wait`` is the server's Retry-After, if it gave one."""

    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.reason, self.wait = reason, wait


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after", "")
    return min(float(value), MAX_RETRY_AFTER) if value.replace(".", "", 1).isdigit() else None


class OpenAIBackend:
    """Chat completions from one server. Each request has one deadline, ``config.timeout`` seconds, for all of
    its attempts and the waits between them; a failed request raises :class:`BackendError` and is never
    turned into an answer (so it is never cached).

    Requests run on one asyncio event loop in a daemon thread (started on first use), as a plain load
    generator would: an answer coming back and the next request going out happen in that loop without a
    thread hand-off, which kept a busy 2-core machine's server below the raw request rate when each request
    had its own thread."""

    def __init__(self, config: BackendConfig) -> None:
        self.config = config
        self.url = base_url_of(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Lock()

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self._started:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, daemon=True, name="cirkit-openai").start()
                # One pooled connection per request in flight (httpx keeps 20 by default, which capped 64).
                n = max(1, self.config.max_in_flight)

                async def make() -> httpx.AsyncClient:
                    return httpx.AsyncClient(timeout=self.config.timeout, headers=_headers(self.config),
                                             limits=httpx.Limits(max_connections=n, max_keepalive_connections=n))

                self.client = asyncio.run_coroutine_threadsafe(make(), loop).result()
                self._loop = loop
                atexit.register(self.close)
            return self._loop

    def close(self) -> None:
        """Close the connections and stop the event loop (a later request starts them again)."""
        with self._started:
            loop, self._loop = self._loop, None
        if loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.client.aclose(), loop).result(timeout=10)
        except Exception:  # noqa: BLE001 - closing at exit must not raise; the sockets go with the process
            pass
        loop.call_soon_threadsafe(loop.stop)

    async def _attempt(self, body: dict, deadline: float) -> ChatResponse:
        """One POST within the deadline: an answer, :class:`_Transient`, or BackendError (not worth retrying)."""
        endpoint = f"{self.url}/chat/completions"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Transient(f"the {self.config.timeout:g}s deadline passed")
        try:
            async with self.client.stream("POST", endpoint, json=body, timeout=httpx.Timeout(remaining)) as r:
                data = await _read_within(r, deadline, self.config.timeout)
        except httpx.TransportError as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from None
        if r.status_code == 200:
            try:
                parsed = json.loads(data)
            except (ValueError, RecursionError):
                raise _Transient(f"HTTP 200 but the body is not JSON ({data[:80]!r})") from None
            return read_response(parsed, body["model"])
        reason = f"HTTP {r.status_code}: {data[:200].decode('utf-8', 'replace')}"
        if r.status_code != 429 and r.status_code < 500:
            raise BackendError(f"{endpoint} refused the request ({reason})")
        raise _Transient(reason, _retry_after(r.headers))

    async def _post(self, body: dict) -> ChatResponse:
        cfg = self.config
        deadline = time.monotonic() + cfg.timeout
        for attempt in range(cfg.retries + 1):
            try:
                return await self._attempt(body, deadline)
            except _Transient as exc:
                last = exc
            if attempt == cfg.retries:
                break  # no wait after the last attempt
            wait = last.wait if last.wait is not None else cfg.backoff * 2**attempt
            if time.monotonic() + wait >= deadline:
                raise BackendError(f"{self.url}/chat/completions failed after {attempt + 1} attempts; the next one "
                                   f"would start after the {cfg.timeout:g}s deadline ({last.reason})")
            await asyncio.sleep(wait)
        raise BackendError(f"{self.url}/chat/completions failed after {cfg.retries + 1} attempts ({last.reason})")

    async def _ask(self, request: ChatRequest) -> ChatResponse:
        """Build the body (images read and base64-encoded off the loop) and post it."""
        if request.images():
            body = await asyncio.to_thread(payload, self.config.model, request)
        else:
            body = payload(self.config.model, request)
        return await self._post(body)

    def stream(self, requests: list[ChatRequest] | tuple[ChatRequest, ...]) -> Iterator[tuple[int, ChatResponse]]:
        """(position, answer) as answers arrive, keeping ``max_in_flight`` requests outstanding from first to last
        (a new one goes out as soon as one comes back; bodies are built only when sent). A failed request does
        not stop the others, unless :data:`GIVE_UP_AFTER` fail in a row (the server is gone: nothing new is
        sent, the requests in flight finish); then the first failure is raised. Closing the iterator early
        (an interrupt) stops new requests from going out; those in flight finish in the background."""
        loop = self._event_loop()
        arrived: queue.Queue = queue.Queue()
        todo = iter(enumerate(requests))
        # "In a row" follows the order requests were sent: an answer to a request sent before the latest failure
        # says nothing about the server now, so it does not reset the count (with several in flight, answers
        # sent early can arrive after later requests failed).
        state = {"stop": False, "failed_in_a_row": 0, "last_failed": -1}

        async def worker() -> None:
            for i, request in todo:  # shared by the workers; safe, as they all run on this one loop
                if state["stop"] or state["failed_in_a_row"] >= GIVE_UP_AFTER:
                    return
                try:
                    answer = await self._ask(request)
                except BackendError as exc:
                    state["failed_in_a_row"] += 1
                    state["last_failed"] = max(state["last_failed"], i)
                    arrived.put((i, None, exc))
                    continue
                if i > state["last_failed"]:
                    state["failed_in_a_row"] = 0
                arrived.put((i, answer, None))

        async def drive() -> None:
            try:
                await asyncio.gather(*(worker() for _ in range(max(1, self.config.max_in_flight))))
            finally:
                state["stop"] = True

        driver = asyncio.run_coroutine_threadsafe(drive(), loop)
        driver.add_done_callback(lambda _: arrived.put(None))
        first_error: BackendError | None = None
        try:
            while (item := arrived.get()) is not None:
                i, answer, error = item
                if error is not None:
                    first_error = first_error or error
                    continue
                yield i, answer
            driver.result()  # an unexpected error in the loop is raised here, not lost
        finally:
            state["stop"] = True
        if first_error is not None:
            raise first_error

    def complete(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        """Answers in order. If some requests fail, the others still finish and travel with the first failure
        (:class:`RequestsFailed`), so the answers that came back can be kept."""
        done: dict[int, ChatResponse] = {}
        try:
            for i, answer in self.stream(requests):
                done[i] = answer
        except BackendError as exc:
            raise RequestsFailed(exc, done) from None
        return [done[i] for i in range(len(requests))]


async def _read_within(response: httpx.Response, deadline: float, timeout: float) -> bytes:
    """The whole body, or :class:`_Transient` once the deadline passes (a server trickling bytes cannot keep a
    request alive) or the body outgrows :data:`MAX_ANSWER_BYTES`."""
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if time.monotonic() > deadline:
            raise _Transient(f"the server did not finish its answer within the {timeout:g}s deadline")
        if size > MAX_ANSWER_BYTES:
            raise _Transient(f"the answer is larger than {MAX_ANSWER_BYTES} bytes")
    return b"".join(chunks)


def list_models(config: BackendConfig) -> list[dict]:
    """The server's ``/models`` entries. A server that cannot be asked is an error, not an empty list: the
    answer is part of every call's key, so guessing would silently change keys (pin ``backend.snapshot``)."""
    url = f"{base_url_of(config)}/models"
    try:
        r = httpx.get(url, headers=_headers(config), timeout=min(config.timeout, 30))
    except httpx.TransportError as exc:
        raise BackendError(f"{url}: cannot ask the server which models it serves ({type(exc).__name__}: {exc}); "
                           "start it, fix backend.base_url, or pin backend.snapshot") from None
    if r.status_code == 404:
        return []  # no such endpoint: the model id alone identifies the model
    try:
        data = r.json().get("data", []) if r.status_code == 200 else None
    except (ValueError, AttributeError, RecursionError):
        data = None
    if not isinstance(data, list):
        raise BackendError(f"{url}: HTTP {r.status_code}, not a model list ({r.text[:200]!r}); pin backend.snapshot "
                           "to run without it")
    return [d for d in data if isinstance(d, dict)]


# Fields of a /models entry that describe the weights being served. ``created`` is left out: vLLM and
# `transformers serve` stamp it with the time of the request, which would make every run a miss.
SNAPSHOT_FIELDS = ("id", "root", "parent", "owned_by", "max_model_len")
# Of those, the ones that say more than the model's name (vLLM: the weights' path, a LoRA's base, the context).
WEIGHT_FIELDS = ("root", "parent", "max_model_len")


def _same_model(served_id: str, model: str) -> bool:
    """``model`` as the server names it, with or without a ``@revision`` suffix on either side."""
    return served_id == model or served_id.split("@", 1)[0] == model.split("@", 1)[0]


def _loads_on_request(entries: list[dict]) -> bool:
    """An unpinned `transformers serve`: it loads whatever model a request names and lists only the models of its
    Hugging Face cache and those already loaded, each with a ``status`` (not an OpenAI field)."""
    return any(isinstance(e.get("status"), dict) for e in entries)


def server_snapshot(model: str, entries: list[dict]) -> str:
    """What the server says about ``model``, as a stable string (the same for every call to the same server).

    An exact id match wins over one that differs only by a ``@revision`` suffix (`transformers serve` has
    reported ids both ways across versions). A server that does not list the model is an error.

    A server that loads models on request (an entry has a ``status``: `transformers serve`, which derives an
    entry's id and owner from the requested name and lists a local folder only once it is loaded) is asked for
    nothing it cannot know: a model it does not list yet is not refused, and an entry that says nothing beyond
    the name gives the same string as no entry, so a key does not depend on what the server had loaded (nor on
    a ``@revision`` of its cache's listing: it loads the name requested). Asked for a model it is pinned away
    from, such a server refuses each request (HTTP 400), and the run stops with that error."""
    if not entries:
        return ""
    entry = next((e for e in entries if e.get("id") == model), None)
    entry = entry or next((e for e in entries if isinstance(e.get("id"), str) and _same_model(e["id"], model)), None)
    on_request = _loads_on_request(entries)
    if entry is None and on_request:
        return ""
    if entry is None:
        served = ", ".join(sorted(str(e.get("id")) for e in entries))[:300]
        raise BackendError(f"the server does not serve model {model!r} (it serves: {served}); fix backend.model")
    if on_request and not any(isinstance(entry.get(k), (str, int)) for k in WEIGHT_FIELDS):
        return ""
    return ";".join(f"{k}={entry[k]}" for k in SNAPSHOT_FIELDS if isinstance(entry.get(k), (str, int)))
