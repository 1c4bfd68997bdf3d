"""Audio plumbing between aiortc and StreamCall.

aiortc decodes Opus in a per-receiver thread and hands over 20 ms frames of
48 kHz stereo s16, even for a mono microphone (its Opus decoder always
outputs stereo). For speech recognition every leg is turned into 16 kHz mono
by PyAV's `AudioResampler` (libswresample: averages the two channels, then a
proper low-pass resample), which costs about 12 µs per frame, so it runs on
the event loop without a thread hop that would cost more than the work.

Both legs of a call reach the server through ONE `StreamCall` whose audio is
LINEAR16 16 kHz *stereo* with `channel_roles = [CUSTOMER, AGENT]`:
`StereoMixer` aligns the legs' samples and interleaves them. The server
already runs one VAD + STT stream per channel role, so the two parties are
transcribed independently and labelled with their roles, in one call with
one event log, one context and one assistant.

`PartyTrack` is what each browser hears: the other party's frames, paced by
the wall clock, with silence while the other party is not connected, so the
answer SDP can carry a sending track from the start and no renegotiation is
needed when the other party joins or leaves.
"""

from __future__ import annotations

import asyncio
import collections
import fractions
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.audio.codeccontext import AudioCodecContext
from av.audio.resampler import AudioResampler

log = logging.getLogger("callpilot.gateway.webrtc")

STT_RATE = 16_000
CUSTOMER, AGENT = "customer", "agent"
CHANNEL_ORDER = (CUSTOMER, AGENT)
"""Stereo channel order of the StreamCall audio; mirrored in the config's channel_roles."""

MAX_SKEW_S = 0.2
"""How far one leg may run ahead of a connected but stalled other leg before the
stalled leg is padded with silence: bounds the added latency, keeps the STT fed."""

CHUNK_MAX_S = 0.1
"""Largest chunk handed to StreamCall (the contract recommends 20 to 100 ms)."""

OUTPUT_QUEUE_S = 10.0
"""Mixed audio waiting for the server. When the server does not accept audio
for this long the oldest chunks are dropped (and counted): the relay to the
other party must never wait on speech recognition, and audio older than
this is of no use to a live copilot."""

DIGITAL_SILENCE_PEAK = 4
"""Samples within ±4 of zero (-78 dBFS) are digital silence: a muted track or a
dead input. Any real microphone, even in a quiet room, exceeds it."""

PARTY_FRAME_SAMPLES = 960
PARTY_RATE = 48_000
PARTY_BITRATE = 48_000
"""Opus bit rate of the relayed voice: transparent for speech in stereo (dual mono)."""
PARTY_BUFFER_FRAMES = 6
"""Frames of the other party waiting to be sent (120 ms). Beyond that the oldest
are dropped: for a live conversation fresh audio beats complete audio."""


class LegConverter:
    """48 kHz stereo s16 frames of one leg -> 16 kHz mono s16 bytes, stateful across frames."""

    def __init__(self) -> None:
        self._resampler = AudioResampler(format="s16", layout="mono", rate=STT_RATE)

    def convert(self, frame: av.AudioFrame) -> bytes:
        return b"".join(self._pcm(out) for out in self._resampler.resample(frame))

    def flush(self) -> bytes:
        """The resampler's last few milliseconds; call once after the last frame."""
        return b"".join(self._pcm(out) for out in self._resampler.resample(None))

    @staticmethod
    def _pcm(frame: av.AudioFrame) -> bytes:
        return bytes(frame.to_ndarray().tobytes())


def is_digital_silence(pcm: bytes) -> bool:
    if not pcm:
        return True
    samples = np.frombuffer(pcm, dtype=np.int16)
    return int(np.abs(samples.astype(np.int32)).max()) <= DIGITAL_SILENCE_PEAK


class StereoMixer:
    """Aligns the customer's and the agent's 16 kHz mono audio into interleaved stereo chunks.

    A leg is *live* from its first samples until it ends. Output advances as
    far as every live leg has samples (so the two channels stay aligned with
    at most one frame of delay); a leg that is absent, not yet connected or
    ended contributes silence; a live leg that stalls is padded once the
    other runs `MAX_SKEW_S` ahead. When no leg is live what is buffered is
    flushed. `close()` ends `chunks()`, which ends the StreamCall's audio.
    """

    def __init__(self, *, queue_s: float = OUTPUT_QUEUE_S) -> None:
        self._buffers: dict[str, bytearray] = {role: bytearray() for role in CHANNEL_ORDER}
        self._live: set[str] = set()
        self._max_skew = int(MAX_SKEW_S * STT_RATE)
        self._chunk_frames = int(CHUNK_MAX_S * STT_RATE)
        # Chunks are usually one 20 ms frame (the legs deliver 20 ms frames).
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(max(1, round(queue_s / 0.02)))
        self._closed = False
        self.dropped_chunks = 0
        self.frames_out = 0

    @property
    def closed(self) -> bool:
        return self._closed

    def push(self, role: str, pcm: bytes) -> None:
        """Add a leg's 16 kHz mono s16 samples (whole samples only)."""
        if self._closed or not pcm:
            return
        self._live.add(role)
        self._buffers[role] += pcm
        self._drain()

    def leg_ended(self, role: str) -> None:
        """The leg will send nothing more: stop waiting for it."""
        self._live.discard(role)
        if not self._closed:
            self._drain()

    def close(self) -> None:
        """Flush everything and end `chunks()` (idempotent)."""
        if self._closed:
            return
        self._live.clear()
        self._drain()
        self._closed = True
        self._put(None)

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            chunk = await self._queue.get()
            if chunk is None:
                return
            yield chunk

    def _drain(self) -> None:
        lengths = {role: len(buf) // 2 for role, buf in self._buffers.items()}
        lead = max(lengths.values())
        ready = min(lengths[r] for r in self._live) if self._live else lead
        ready = max(ready, lead - self._max_skew)
        while ready > 0:
            n = min(ready, self._chunk_frames)
            self._emit(n)
            ready -= n

    def _emit(self, frames: int) -> None:
        stereo = np.zeros((frames, len(CHANNEL_ORDER)), dtype=np.int16)
        for channel, role in enumerate(CHANNEL_ORDER):
            buf = self._buffers[role]
            take = min(frames, len(buf) // 2)
            if take:
                stereo[:take, channel] = np.frombuffer(bytes(buf[: take * 2]), dtype=np.int16)
                del buf[: take * 2]
        self.frames_out += frames
        self._put(stereo.tobytes())

    def _put(self, chunk: bytes | None) -> None:
        while True:
            try:
                self._queue.put_nowait(chunk)
                return
            except asyncio.QueueFull:
                dropped = self._queue.get_nowait()
                if dropped is None:  # never drop the end marker
                    self._queue.put_nowait(None)
                    return
                self.dropped_chunks += 1
                if self.dropped_chunks == 1 or self.dropped_chunks % 500 == 0:
                    log.warning(
                        "the server is not accepting audio; dropped %d chunk(s) of the oldest audio",
                        self.dropped_chunks,
                    )


class PartyTrack(MediaStreamTrack):
    """The audio one browser hears: the other party's frames, or silence, paced at 20 ms.

    The leg that *receives* the other party's audio calls `feed(frame)`; the
    aiortc sender of this leg calls `recv()`. Frames are handed over whole
    (the feeder gives up ownership).

    The track encodes Opus itself, in the default executor, and hands aiortc
    ready packets: given raw frames, aiortc's sender computes an RFC 6465
    audio level with a per-sample Python loop on the event loop (about 1 ms
    per 20 ms frame, the largest single cost of a relayed leg and a stall
    for every other call); given packets it only packetizes them. The RTP
    timeline is this track's own, so it stays continuous across the other
    party's joins, leaves and gaps.
    """

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._frames: collections.deque[av.AudioFrame] = collections.deque(maxlen=PARTY_BUFFER_FRAMES)
        self._rechunk: AudioResampler | None = None
        self._encoder: AudioCodecContext = av.CodecContext.create("libopus", "w")
        self._encoder.bit_rate = PARTY_BITRATE
        self._encoder.format = "s16"
        self._encoder.layout = "stereo"
        self._encoder.sample_rate = PARTY_RATE
        self._encoder.time_base = fractions.Fraction(1, PARTY_RATE)
        self._encoder.options = {"application": "voip"}
        self._start: float | None = None
        self._pts = 0
        self._time_base = fractions.Fraction(1, PARTY_RATE)
        self._silence = np.zeros((1, PARTY_FRAME_SAMPLES * 2), dtype=np.int16)
        self.frames_relayed = 0

    def feed(self, frame: av.AudioFrame) -> None:
        """Queue one decoded frame of the other party (48 kHz stereo s16, as aiortc decodes)."""
        if self.readyState != "live":
            return
        if self._rechunk is None and frame.samples == PARTY_FRAME_SAMPLES:
            self._frames.append(frame)
            return
        # Packet times other than 20 ms: cut into 20 ms frames, the Opus frame size.
        if self._rechunk is None:
            self._rechunk = AudioResampler(
                format="s16", layout="stereo", rate=PARTY_RATE, frame_size=PARTY_FRAME_SAMPLES
            )
        self._frames.extend(self._rechunk.resample(frame))

    def _next_frame(self) -> av.AudioFrame:
        if self._frames:
            self.frames_relayed += 1
            return self._frames.popleft()
        silence = av.AudioFrame.from_ndarray(self._silence, format="s16", layout="stereo")
        silence.sample_rate = PARTY_RATE
        return silence

    async def _pace(self) -> None:
        now = time.monotonic()
        if self._start is None:
            self._start = now
            return
        due = self._start + self._pts / PARTY_RATE
        if due > now:
            await asyncio.sleep(due - now)
        elif now - due > 1.0:
            # The sender fell far behind (event loop stalled): re-anchor
            # rather than burst a second of frames.
            self._start = now - self._pts / PARTY_RATE

    async def recv(self) -> av.Packet[Any]:
        loop = asyncio.get_running_loop()
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            await self._pace()
            frame = self._next_frame()
            frame.pts = self._pts
            frame.time_base = self._time_base
            self._pts += frame.samples
            packets = await loop.run_in_executor(None, self._encoder.encode, frame)
            if packets:  # the encoder may hold the very first frame back
                packet = packets[-1]
                packet.pts = frame.pts
                packet.time_base = self._time_base
                return packet
