"""A loopback OpenAI-compatible HTTP server for tests and benchmarks.

Endpoints, with the wire formats of the OpenAI API:

* `POST /v1/chat/completions`: with `"stream": true`, a `text/event-stream`
  of `data: {chat.completion.chunk}` events ending in `data: [DONE]`; the
  first chunk carries `delta.role`, content arrives in `delta.content` pieces,
  tool calls in `delta.tool_calls[]` entries keyed by `index` whose `id`,
  `function.name` and `type` come in the first entry of a call and whose
  `function.arguments` string is split across later chunks; the last choice
  chunk has `finish_reason` ("stop" or "tool_calls"). Without streaming, one
  `chat.completion` object. Errors are `{"error": {message, type, param,
  code}}` with the HTTP status, or an `error` object inside the stream.
* `POST /v1/audio/transcriptions`: multipart form (`file`, `model`,
  `language`, `prompt`, `response_format`, `include[]`), answered with
  `{"text": ..., "usage": {...}}` (and `logprobs` when asked for).

Replies are scripted: a list consumed in order, or a function of the
recorded request. Every reply is finite and bounded in time (`Hang` sleeps
for its stated seconds at most), and the server closes its connections at
teardown.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
import uuid
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

# ----------------------------------------------------------------------- replies


@dataclass(frozen=True)
class ToolCallSpec:
    """One tool call the model makes; `arguments` is sent in `pieces` chunks."""

    name: str
    arguments: str
    id: str = ""
    pieces: int = 3


@dataclass(frozen=True)
class Stream:
    """A streamed completion: `content` pieces and/or tool calls, then finish.

    `delay` seconds are slept before each chunk after the first payload chunk
    (the role chunk and the first content/tool chunk go out at once);
    `interleave_tool_calls` sends the argument pieces of several calls
    alternately (index 0, 1, 0, 1...), as parallel tool calls can arrive.
    """

    content: Sequence[str] = ()
    tool_calls: Sequence[ToolCallSpec] = ()
    delay: float = 0.0
    interleave_tool_calls: bool = False
    finish_reason: str | None = None  # default: "tool_calls" if tool calls else "stop"
    # Abort the TCP connection after this many chunks (a dropped upstream).
    drop_after: int | None = None
    # Send an in-stream error event after this many chunks.
    error_after: int | None = None


@dataclass(frozen=True)
class Completion:
    """A non-streamed completion."""

    content: str
    delay: float = 0.0


@dataclass(frozen=True)
class Error:
    status: int = 500
    message: str = "The server had an error while processing your request."
    type: str = "server_error"
    code: str | None = None


@dataclass(frozen=True)
class Hang:
    """Accept the request and send nothing for `seconds` (then a 504)."""

    seconds: float


ChatReply = Stream | Completion | Error | Hang
ChatScript = Sequence[ChatReply] | Callable[[dict[str, Any]], ChatReply]


@dataclass(frozen=True)
class Transcript:
    text: str
    delay: float = 0.0


TranscriptionReply = Transcript | Error | Hang
TranscriptionScript = Sequence[TranscriptionReply] | Callable[["TranscriptionRequest"], TranscriptionReply]


def text_stream(text: str, *, pieces: int = 4, delay: float = 0.0) -> Stream:
    """`text` split into about `pieces` content deltas at word boundaries."""
    words = text.split(" ")
    size = max(1, -(-len(words) // pieces))
    parts = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    return Stream(content=[p if i == 0 else " " + p for i, p in enumerate(parts)], delay=delay)


# ----------------------------------------------------------------------- records


@dataclass
class TranscriptionRequest:
    model: str
    language: str
    prompt: str
    response_format: str
    include: list[str]
    filename: str
    content_type: str
    wav_rate: int
    wav_channels: int
    wav_width: int
    wav_seconds: float
    wav_bytes: bytes


@dataclass
class ServerLog:
    chat: list[dict[str, Any]] = field(default_factory=list)
    transcriptions: list[TranscriptionRequest] = field(default_factory=list)
    auth: list[str] = field(default_factory=list)
    disconnects: int = 0  # streams the client abandoned before the end
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    # Wall clocks for benchmarks, per chat request: arrival (body read),
    # first payload chunk written, [DONE] written.
    chat_arrived: list[float] = field(default_factory=list)
    first_payload_at: list[float] = field(default_factory=list)
    done_at: list[float] = field(default_factory=list)
    transcription_arrived: list[float] = field(default_factory=list)


def _error_body(err: Error) -> dict[str, Any]:
    return {"error": {"message": err.message, "type": err.type, "param": None, "code": err.code}}


class FakeOpenAI:
    """`async with FakeOpenAI(chat=[...], transcriptions=[...]) as oa: oa.base_url`."""

    def __init__(
        self,
        *,
        chat: ChatScript = (),
        transcriptions: TranscriptionScript = (),
        api_key: str = "sk-test",
        model: str = "gpt-test",
    ) -> None:
        self.chat_script = chat
        self.transcription_script = transcriptions
        self.api_key = api_key
        self.model = model
        self.log = ServerLog()
        self._chat_i = 0
        self._tr_i = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def __aenter__(self) -> FakeOpenAI:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/audio/transcriptions", self._transcriptions)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await asyncio.wait_for(self._runner.cleanup(), 5.0)

    # ------------------------------------------------------------------ helpers

    def _authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        self.log.auth.append(header)
        return header == f"Bearer {self.api_key}"

    def _next_chat(self, body: dict[str, Any]) -> ChatReply:
        if callable(self.chat_script):
            return self.chat_script(body)
        if self._chat_i >= len(self.chat_script):
            return Error(500, "fake: no scripted reply left")
        reply = self.chat_script[self._chat_i]
        self._chat_i += 1
        return reply

    def _next_transcription(self, rec: TranscriptionRequest) -> TranscriptionReply:
        if callable(self.transcription_script):
            return self.transcription_script(rec)
        if self._tr_i >= len(self.transcription_script):
            return Error(500, "fake: no scripted transcript left")
        reply = self.transcription_script[self._tr_i]
        self._tr_i += 1
        return reply

    # --------------------------------------------------------------------- chat

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            return web.json_response(
                _error_body(
                    Error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
                ),
                status=401,
            )
        body = await request.json()
        self.log.chat.append(body)
        self.log.chat_arrived.append(time.time())
        reply = self._next_chat(body)
        if isinstance(reply, Hang):
            await asyncio.sleep(reply.seconds)
            return web.json_response(_error_body(Error(504, "fake: hung")), status=504)
        if isinstance(reply, Error):
            return web.json_response(_error_body(reply), status=reply.status)
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:20]}"
        created = int(time.time())
        model = str(body.get("model", self.model))
        if isinstance(reply, Completion):
            await asyncio.sleep(reply.delay)
            return web.json_response(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": reply.content, "refusal": None},
                            "finish_reason": "stop",
                            "logprobs": None,
                        }
                    ],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
                }
            )
        if not body.get("stream"):
            return web.json_response(
                _error_body(Error(400, "fake: script streams, request did not")), status=400
            )
        return await self._stream(request, reply, completion_id, created, model)

    @staticmethod
    def _chunks(reply: Stream) -> list[dict[str, Any]]:
        """The `choices[0]` entries of each chunk, in order."""
        out: list[dict[str, Any]] = [{"delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
        out += [{"delta": {"content": c}, "finish_reason": None} for c in reply.content]
        pieces: list[list[dict[str, Any]]] = []
        for index, call in enumerate(reply.tool_calls):
            args = call.arguments
            n = max(1, call.pieces)
            size = max(1, -(-len(args) // n))
            parts = [args[i : i + size] for i in range(0, len(args), size)] or [""]
            seq: list[dict[str, Any]] = [
                {
                    "index": index,
                    "id": call.id or f"call_{uuid.uuid4().hex[:24]}",
                    "type": "function",
                    "function": {"name": call.name, "arguments": ""},
                }
            ]
            seq += [{"index": index, "function": {"arguments": p}} for p in parts]
            pieces.append(seq)
        if reply.interleave_tool_calls:
            order: list[dict[str, Any]] = []
            for i in range(max((len(p) for p in pieces), default=0)):
                order += [p[i] for p in pieces if i < len(p)]
        else:
            order = [d for p in pieces for d in p]
        out += [{"delta": {"tool_calls": [d]}, "finish_reason": None} for d in order]
        finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
        out.append({"delta": {}, "finish_reason": finish})
        return out

    async def _stream(
        self, request: web.Request, reply: Stream, completion_id: str, created: int, model: str
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        finished = False
        try:
            for i, choice in enumerate(self._chunks(reply)):
                if reply.drop_after is not None and i >= reply.drop_after:
                    if request.transport is not None:
                        request.transport.abort()
                    finished = True
                    return resp
                if reply.error_after is not None and i >= reply.error_after:
                    err = _error_body(Error(500, "fake: the model crashed mid-stream"))
                    await resp.write(f"data: {json.dumps(err)}\n\n".encode())
                    finished = True
                    return resp
                if i > 1 and reply.delay:
                    await asyncio.sleep(reply.delay)
                chunk = {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "system_fingerprint": "fp_fake",
                    "choices": [{"index": 0, "logprobs": None, **choice}],
                }
                await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
                if i == 1:
                    self.log.first_payload_at.append(time.time())
            await resp.write(b"data: [DONE]\n\n")
            self.log.done_at.append(time.time())
            finished = True
            with contextlib.suppress(ConnectionError):
                await resp.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if not finished:
                self.log.disconnects += 1
                self.log.disconnected.set()
        return resp

    # ---------------------------------------------------------- transcriptions

    async def _transcriptions(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            return web.json_response(
                _error_body(
                    Error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
                ),
                status=401,
            )
        form = await request.post()
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            missing = Error(400, "file is required", "invalid_request_error")
            return web.json_response(_error_body(missing), status=400)
        data = upload.file.read()
        with wave.open(io.BytesIO(data), "rb") as wav:
            rate, channels, width, frames = (
                wav.getframerate(),
                wav.getnchannels(),
                wav.getsampwidth(),
                wav.getnframes(),
            )
        rec = TranscriptionRequest(
            model=str(form.get("model", "")),
            language=str(form.get("language", "")),
            prompt=str(form.get("prompt", "")),
            response_format=str(form.get("response_format", "json")),
            include=[str(v) for v in form.getall("include[]", [])],
            filename=upload.filename,
            content_type=upload.content_type,
            wav_rate=rate,
            wav_channels=channels,
            wav_width=width,
            wav_seconds=frames / rate,
            wav_bytes=data,
        )
        self.log.transcriptions.append(rec)
        self.log.transcription_arrived.append(time.time())
        reply = self._next_transcription(rec)
        if isinstance(reply, Hang):
            await asyncio.sleep(reply.seconds)
            return web.json_response(_error_body(Error(504, "fake: hung")), status=504)
        if isinstance(reply, Error):
            return web.json_response(_error_body(reply), status=reply.status)
        await asyncio.sleep(reply.delay)
        body: dict[str, Any] = {
            "text": reply.text,
            "usage": {"type": "duration", "seconds": round(rec.wav_seconds, 2)},
        }
        if "logprobs" in rec.include:
            body["logprobs"] = [
                {"token": w, "logprob": -0.05, "bytes": list(w.encode())} for w in reply.text.split()
            ]
        return web.json_response(body)
