"""A scripted WebRTC party written with aiortc: the "browser" of the API tests and the benchmark.

It does exactly what a non-trickle page does: fetch nothing but the
signalling endpoints, offer with every candidate already in the SDP, and
play a WAV file (or silence) as its microphone in real time. It records
when each of its own audio chunks went out ("mouth time") and how much of
the other party's audio it received.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import time
import urllib.request
import wave
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

RATE = 16_000
FRAME = 320  # 20 ms at 16 kHz


class WavTrack(MediaStreamTrack):
    """16 kHz mono speech from a WAV, paced at 20 ms per frame, then silence (or the end).

    It hands aiortc Opus packets it encoded itself: given raw frames, aiortc
    spends about 1 ms of Python per frame computing an audio level, which
    would make the load generator, not the gateway, the bottleneck of the
    benchmark.
    """

    kind = "audio"

    def __init__(self, path: Path | None, *, lead_silence_s: float = 0.0, then: str = "silence") -> None:
        super().__init__()
        samples = np.zeros(0, dtype=np.int16)
        if path is not None:
            with wave.open(str(path), "rb") as wav:
                assert wav.getframerate() == RATE and wav.getnchannels() == 1
                samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
        lead = np.zeros(int(lead_silence_s * RATE), dtype=np.int16)
        self.samples = np.concatenate([lead, samples])
        self.speech_start_s = lead_silence_s
        self.then = then
        self.position = 0
        self.start: float | None = None
        self.first_sent_wall = 0.0
        self._encoder = av.CodecContext.create("libopus", "w")
        self._encoder.bit_rate = 32_000
        self._encoder.format = "s16"
        self._encoder.layout = "mono"
        self._encoder.sample_rate = RATE
        self._encoder.time_base = fractions.Fraction(1, RATE)

    @property
    def done(self) -> bool:
        return self.position >= len(self.samples)

    async def recv(self) -> av.Packet[Any]:
        while True:
            frame = await self._next_frame()
            packets = self._encoder.encode(frame)
            if packets:
                packet = packets[-1]
                packet.pts = frame.pts
                packet.time_base = fractions.Fraction(1, RATE)
                return packet

    async def _next_frame(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self.start is None:
            self.start = now
            self.first_sent_wall = time.time()
        else:
            due = self.start + self.position / RATE
            if due > now:
                await asyncio.sleep(due - now)
        chunk = self.samples[self.position : self.position + FRAME]
        if len(chunk) < FRAME:
            if self.then == "end" and self.done:
                self.stop()
                raise MediaStreamError
            chunk = np.pad(chunk, (0, FRAME - len(chunk)))
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self.position
        frame.time_base = fractions.Fraction(1, RATE)
        self.position += FRAME
        return frame


def http_json(url: str, body: dict[str, Any] | None = None, *, timeout: float = 30.0) -> tuple[int, Any]:
    """POST (or GET without a body) JSON; returns (status, parsed body) without raising on 4xx/5xx."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


async def ahttp_json(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    return await asyncio.to_thread(http_json, url, body)


class Party:
    """One aiortc peer on a call through the gateway at `base` (http://host:port)."""

    def __init__(self, base: str, call_id: str, role: str, track: MediaStreamTrack) -> None:
        self.base = base
        self.call_id = call_id
        self.role = role
        self.track = track
        self.pc = RTCPeerConnection()
        self.pc.addTrack(track)
        self.frames_received = 0
        self.loud_frames_received = 0
        self.connected = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)

    def _on_state(self) -> None:
        if self.pc.connectionState == "connected":
            self.connected.set()

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._reader = asyncio.create_task(self._read(track))

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                self.frames_received += 1
                assert isinstance(frame, av.AudioFrame)
                if np.abs(frame.to_ndarray()).max() > 64:
                    self.loud_frames_received += 1
        except MediaStreamError:
            return

    async def offer_sdp(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def join(self) -> tuple[int, Any]:
        """Offer (non-trickle) and apply the answer; returns the offer endpoint's (status, body)."""
        sdp = await self.offer_sdp()
        status, body = await ahttp_json(
            f"{self.base}/api/webrtc/offer",
            {"call_id": self.call_id, "role": self.role, "sdp": sdp, "type": "offer"},
        )
        if status == 200:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type=body["type"]))
        return status, body

    async def hang_up(self) -> tuple[int, Any]:
        return await ahttp_json(
            f"{self.base}/api/webrtc/hangup", {"call_id": self.call_id, "role": self.role}
        )

    async def close(self) -> None:
        await self.pc.close()
        if self._reader is not None:
            self._reader.cancel()
