"""A loopback Deepgram live-transcription server for tests and benchmarks.

It speaks the `/v1/listen` websocket protocol the way Deepgram documents it:
query parameters configure the stream, binary frames carry linear16 audio,
text frames carry `KeepAlive`, `Finalize` and `CloseStream`; the server sends
`Results` (interim, `is_final`, `speech_final`, `from_finalize`),
`SpeechStarted` (with `vad_events`), `UtteranceEnd` (with `utterance_end_ms`)
and `Metadata` before closing after `CloseStream`, and it idles out a socket
that receives nothing for `idle_timeout` seconds with close code 1011
(NET-0001), like the real service.

Recognition is scripted through the audio itself so that the same audio is
recognised identically however it is split across connections (which is what
replay after a drop needs): every "word" is a pure tone, word *k* of
`vocabulary` at `BASE_HZ + k * STEP_HZ`, analysed in 20 ms frames. `tone_words`
builds such audio. Timings in messages are seconds from the connection's
first sample, as Deepgram's are.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from aiohttp import WSMsgType, web

SAMPLE_RATE = 16_000
FRAME = 320  # 20 ms
FRAME_S = FRAME / SAMPLE_RATE
BASE_HZ = 400.0
STEP_HZ = 100.0
WORD_S = 0.24
GAP_S = 0.06


def tone_words(
    words: Sequence[str], vocabulary: Sequence[str], *, amplitude: float = 0.3
) -> npt.NDArray[np.float32]:
    """Audio in which the fake recognises `words`: WORD_S of tone each, GAP_S apart."""
    n = int(WORD_S * SAMPLE_RATE)
    gap = np.zeros(int(GAP_S * SAMPLE_RATE), dtype=np.float32)
    t = np.arange(n, dtype=np.float32) / SAMPLE_RATE
    pieces: list[npt.NDArray[np.float32]] = []
    for i, w in enumerate(words):
        hz = BASE_HZ + STEP_HZ * vocabulary.index(w)
        pieces.append((amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32))
        if i + 1 < len(words):
            pieces.append(gap)
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)


def silence(seconds: float) -> npt.NDArray[np.float32]:
    return np.zeros(round(seconds * SAMPLE_RATE), dtype=np.float32)


@dataclass
class DeepgramScript:
    """How the fake behaves."""

    vocabulary: Sequence[str]
    api_key: str = "test-key"
    # Finalise a part (is_final without speech_final) every N words; 0 = only at endpoints.
    final_every_words: int = 0
    # When False, endpoints send is_final without speech_final (as noisy audio does),
    # leaving UtteranceEnd to close the utterance.
    speech_final: bool = True
    # Empty is_final results during silence, every this many seconds of audio.
    silence_final_every: float = 2.0
    # Connection index -> abruptly drop that connection after this many seconds of audio.
    drop_after: dict[int, float] = field(default_factory=dict)
    drop_mode: str = "abort"  # "abort" (TCP reset) or "1011" (close frame with an error code)
    # Refuse handshakes (HTTP 503) for connection indexes >= this.
    refuse_from: int | None = None
    idle_timeout: float = 10.0


@dataclass
class ConnectionLog:
    """What one socket saw, for assertions."""

    index: int
    query: dict[str, list[str]]
    audio: bytearray = field(default_factory=bytearray)
    client_messages: list[str] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    # Wall clocks for benchmarks: when each `sent` message was written, and
    # (total audio bytes received, time) after each binary frame.
    sent_at: list[float] = field(default_factory=list)
    audio_at: list[tuple[int, float]] = field(default_factory=list)

    @property
    def audio_seconds(self) -> float:
        return len(self.audio) / 2 / SAMPLE_RATE

    def count(self, kind: str) -> int:
        return sum(1 for m in self.client_messages if m == kind)


class _Recogniser:
    """Per-connection state machine producing Deepgram messages from frames."""

    def __init__(self, script: DeepgramScript, query: dict[str, list[str]]) -> None:
        def flag(name: str, default: bool) -> bool:
            return query.get(name, [str(default).lower()])[-1].lower() == "true"

        self.script = script
        self.interim = flag("interim_results", False)
        self.vad_events = flag("vad_events", False)
        ep = query.get("endpointing", ["10"])[-1]
        self.endpointing = None if ep == "false" else int(ep) / 1000
        ue = query.get("utterance_end_ms", [None])[-1]
        self.utterance_end = int(ue) / 1000 if ue else None
        self.request_id = str(uuid.uuid4())
        self.model = query.get("model", ["nova-3"])[-1]
        self.t = 0.0  # seconds processed
        self.pending: list[tuple[str, float, float]] = []
        self.last_final_end = 0.0
        self.last_word_end = 0.0
        self.in_speech = False
        self.utterance_end_due = False
        self.word: tuple[int, float] | None = None  # (k, start) of the word being heard
        self.buf = b""

    # ---------------------------------------------------------------- messages

    def _results(
        self,
        words: list[tuple[str, float, float]],
        *,
        is_final: bool,
        speech_final: bool,
        from_finalize: bool = False,
    ) -> dict[str, Any]:
        start = self.last_final_end
        msg: dict[str, Any] = {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": round(self.t - start, 3),
            "start": round(start, 3),
            "is_final": is_final,
            "speech_final": speech_final,
            "channel": {
                "alternatives": [
                    {
                        "transcript": " ".join(w for w, _, _ in words),
                        "confidence": 0.9 if words else 0.0,
                        "words": [
                            {
                                "word": w,
                                "start": round(s, 3),
                                "end": round(e, 3),
                                "confidence": 0.9,
                                "punctuated_word": w,
                            }
                            for w, s, e in words
                        ],
                    }
                ]
            },
            "metadata": {
                "request_id": self.request_id,
                "model_info": {"name": self.model, "version": "fake", "arch": "fake"},
                "model_uuid": "00000000-0000-0000-0000-000000000000",
            },
        }
        if from_finalize:
            msg["from_finalize"] = True
        if is_final:
            self.last_final_end = self.t
        return msg

    def _classify(self, frame: npt.NDArray[np.float32]) -> int | None:
        if float(np.sqrt(np.mean(frame**2))) < 0.01:
            return None
        spectrum = np.abs(np.fft.rfft(frame))
        hz = float(np.argmax(spectrum)) * SAMPLE_RATE / FRAME
        k = round((hz - BASE_HZ) / STEP_HZ)
        return k if 0 <= k < len(self.script.vocabulary) else None

    def _end_word(self, at: float, out: list[dict[str, Any]]) -> None:
        if self.word is None:
            return
        k, start = self.word
        self.word = None
        self.pending.append((self.script.vocabulary[k], start, at))
        self.last_word_end = at
        self.utterance_end_due = self.utterance_end is not None
        n = self.script.final_every_words
        if n and len(self.pending) >= n:
            out.append(self._results(self.pending, is_final=True, speech_final=False))
            self.pending = []
        elif self.interim:
            out.append(self._results(self.pending, is_final=False, speech_final=False))

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        self.buf += data
        while len(self.buf) >= FRAME * 2:
            raw, self.buf = self.buf[: FRAME * 2], self.buf[FRAME * 2 :]
            frame = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32767.0
            k = self._classify(frame)
            frame_start = self.t
            self.t = round(self.t + FRAME_S, 6)
            if k is not None:
                if self.word is not None and self.word[0] != k:
                    self._end_word(frame_start, out)
                if self.word is None:
                    self.word = (k, frame_start)
                    if not self.in_speech:
                        self.in_speech = True
                        if self.vad_events:
                            out.append(
                                {
                                    "type": "SpeechStarted",
                                    "channel": [0, 1],
                                    "timestamp": round(frame_start, 3),
                                }
                            )
                continue
            self._end_word(frame_start, out)
            gap = self.t - self.last_word_end
            if self.in_speech and self.endpointing is not None and gap >= self.endpointing:
                self.in_speech = False
                if self.script.speech_final:
                    out.append(self._results(self.pending, is_final=True, speech_final=True))
                    self.pending = []
                elif self.pending:
                    out.append(self._results(self.pending, is_final=True, speech_final=False))
                    self.pending = []
            if self.utterance_end_due and self.utterance_end is not None and gap >= self.utterance_end:
                self.utterance_end_due = False
                out.append(
                    {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": round(self.last_word_end, 3)}
                )
            if (
                not self.in_speech
                and not self.pending
                and self.t - self.last_final_end >= self.script.silence_final_every
            ):
                out.append(self._results([], is_final=True, speech_final=False))
        return out

    def finalize(self, *, from_finalize: bool) -> list[dict[str, Any]]:
        self._end_word(self.t, [])
        if not self.pending and self.t <= self.last_final_end:
            return []
        msg = self._results(self.pending, is_final=True, speech_final=False, from_finalize=from_finalize)
        self.pending = []
        return [msg]


class FakeDeepgram:
    """The server. `async with FakeDeepgram(script) as dg: ... dg.url ...`."""

    def __init__(self, script: DeepgramScript) -> None:
        self.script = script
        self.connections: list[ConnectionLog] = []
        self.refused = 0
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeDeepgram:
        app = web.Application()
        app.router.add_get("/v1/listen", self._listen)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(code=1001), 1.0)
        if self._runner is not None:
            await asyncio.wait_for(self._runner.cleanup(), 5.0)

    async def _listen(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Token {self.script.api_key}":
            return web.json_response(
                {"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials."}, status=401
            )
        index = len(self.connections) + self.refused
        if self.script.refuse_from is not None and index >= self.script.refuse_from:
            self.refused += 1
            return web.json_response({"err_code": "UNAVAILABLE"}, status=503)
        query: dict[str, list[str]] = {}
        for key, value in request.query.items():
            query.setdefault(key, []).append(value)
        conn = ConnectionLog(index=len(self.connections), query=query)
        self.connections.append(conn)
        rec = _Recogniser(self.script, query)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.add(ws)

        async def send(messages: list[dict[str, Any]]) -> None:
            for m in messages:
                conn.sent.append(m)
                conn.sent_at.append(time.time())
                await ws.send_str(json.dumps(m))

        drop_at = self.script.drop_after.get(conn.index)
        try:
            while True:
                try:
                    msg = await ws.receive(timeout=self.script.idle_timeout)
                except TimeoutError:
                    conn.close_code = 1011
                    await ws.close(
                        code=1011, message=b"NET-0001: no audio or KeepAlive within the timeout window"
                    )
                    break
                if msg.type == WSMsgType.BINARY:
                    conn.audio.extend(msg.data)
                    conn.audio_at.append((len(conn.audio), time.time()))
                    await send(rec.feed(msg.data))
                    if drop_at is not None and conn.audio_seconds >= drop_at:
                        conn.close_code = 1006 if self.script.drop_mode == "abort" else 1011
                        if self.script.drop_mode == "abort" and request.transport is not None:
                            request.transport.abort()
                        else:
                            await ws.close(code=1011, message=b"internal error")
                        break
                elif msg.type == WSMsgType.TEXT:
                    kind = str(json.loads(msg.data).get("type"))
                    conn.client_messages.append(kind)
                    if kind == "Finalize":
                        await send(rec.finalize(from_finalize=True))
                    elif kind == "CloseStream":
                        await send(rec.finalize(from_finalize=False))
                        await send(
                            [
                                {
                                    "type": "Metadata",
                                    "transaction_key": "deprecated",
                                    "request_id": rec.request_id,
                                    "sha256": "0" * 64,
                                    "created": "2025-01-01T00:00:00.000Z",
                                    "duration": round(rec.t, 3),
                                    "channels": 1,
                                }
                            ]
                        )
                        conn.close_code = 1000
                        await ws.close(code=1000)
                        break
                else:  # CLOSE, CLOSING, CLOSED, ERROR
                    break
        finally:
            self._sockets.discard(ws)
        return ws
