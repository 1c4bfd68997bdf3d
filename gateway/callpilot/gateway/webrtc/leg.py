"""One party's WebRTC connection to a call: an aiortc peer connection and its lifecycle.

    new -> connecting -> connected -> ended(reason)

A leg ends exactly once, for the first of these reasons:

* `hangup`            the page hung up (API or websocket), or closed the
                      connection (DTLS close / the remote track ended: a
                      closed tab);
* `no-media`          no RTP at all for `MEDIA_TIMEOUT_S` while connected:
                      the page vanished without a goodbye (a closed or
                      crashed tab sends neither RTCP BYE nor DTLS close;
                      browsers otherwise send audio packets continuously,
                      even for a muted microphone);
* `ice-failed`        ICE failed (consent freshness included), or the leg
                      did not connect within the silence timeout;
* `silence`           no frame above digital silence for the silence
                      timeout (a dead or muted input, a vanished peer);
* `call-ended`        the call ended on the server (EndCall, shutdown);
* `server-error`      the StreamCall failed;
* `gateway-shutdown`  the gateway is stopping.

Ending closes the peer connection first and then waits for the reader to
drain, so every frame the leg received - including the resampler's tail -
reaches the mixer before the call is told the leg is gone; that ordering is
what keeps the last words of a hung-up party in the transcript.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import av
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.exceptions import InvalidAccessError, InvalidStateError, OperationError
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import SessionDescription, candidate_from_sdp, candidate_to_sdp
from callpilot.gateway.webrtc import loopback
from callpilot.gateway.webrtc.audio import LegConverter, PartyTrack, is_digital_silence
from callpilot.gateway.webrtc.errors import bad_request
from callpilot.gateway.webrtc.logctx import CallLog
from callpilot.gateway.webrtc.validation import Candidate

CLOSE_TIMEOUT_S = 5.0
"""Bound on closing the peer connection and draining the reader."""

MEDIA_TIMEOUT_S = 5.0
"""A connected leg that delivers no audio frame at all for this long has gone away.
Browsers send 50 packets a second (Opus DTX, when a client enables it, still sends
one every 400 ms), so 5 s is unambiguous; ICE consent would take 30 s."""

AudioSink = Callable[[str, bytes, "av.AudioFrame | None"], None]


class Leg:
    """One browser (customer or agent) in one call."""

    def __init__(
        self,
        call_id: str,
        role: str,
        *,
        ice_servers: list[RTCIceServer],
        silence_timeout_s: float,
        on_audio: AudioSink,
        on_state: Callable[[Leg], None],
    ) -> None:
        self.call_id = call_id
        self.role = role
        self.state = "new"
        self.end_reason = ""
        self.outbound = PartyTrack()
        self.local_candidates: list[dict[str, Any]] = []
        self.remote_ufrag = ""
        self.frames_in = 0
        self.created = time.monotonic()
        self._silence_timeout_s = silence_timeout_s
        self._on_audio = on_audio
        self._on_state = on_state
        self._pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers))
        self._track: MediaStreamTrack | None = None
        self._reader: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._ending: asyncio.Task[None] | None = None
        self._joined = False
        self._last_sound = self.created
        self._last_frame = self.created
        self._log = CallLog(call_id)
        self._pc.on("track", self._on_track)
        self._pc.on("connectionstatechange", self._on_connection_state)

    # ------------------------------------------------------------ signalling

    @property
    def ended(self) -> bool:
        return self._ending is not None

    async def negotiate(self, offer_sdp: str) -> str:
        """Apply the page's offer and return the answer SDP (all gateway candidates included).

        aiortc gathers every candidate before `setLocalDescription` returns,
        so the answer alone is enough for a non-trickle page.
        """
        if loopback.is_enabled():
            offer_sdp = loopback.keep_loopback_candidates(offer_sdp)
        # The transceiver exists before the offer is applied, so the offer's
        # audio m-line binds to it and only Opus is negotiated.
        transceiver = self._pc.addTransceiver(self.outbound, direction="sendrecv")
        transceiver.setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType.lower() == "audio/opus"]
        )
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        except (
            ValueError,
            AssertionError,
            KeyError,
            IndexError,
            InvalidAccessError,
            InvalidStateError,
            OperationError,
        ) as exc:
            raise bad_request(
                f"the offer SDP was rejected: {exc or type(exc).__name__}", field="sdp", code="INVALID_SDP"
            ) from None
        answer = await self._pc.createAnswer()
        await self._pc.setLocalDescription(answer)
        local = self._pc.localDescription
        self._collect_local_candidates(local.sdp)
        remote = SessionDescription.parse(offer_sdp)
        self.remote_ufrag = (remote.media[0].ice.usernameFragment or "") if remote.media[0].ice else ""
        self.state = "connecting"
        if self._pc.connectionState == "connected":  # pragma: no cover - only with an instant ICE check
            self.state = "connected"
        return local.sdp

    def _collect_local_candidates(self, sdp: str) -> None:
        parsed = SessionDescription.parse(sdp)
        for index, media in enumerate(parsed.media):
            for candidate in media.ice_candidates:
                self.local_candidates.append(
                    {
                        "candidate": "candidate:" + candidate_to_sdp(candidate),
                        "sdpMid": media.rtp.muxId,
                        "sdpMLineIndex": index,
                    }
                )

    async def add_candidate(self, candidate: Candidate) -> None:
        """Apply a trickled remote candidate (or end-of-candidates)."""
        if self.ended:
            return
        if (
            candidate.username_fragment
            and self.remote_ufrag
            and candidate.username_fragment != self.remote_ufrag
        ):
            return  # belongs to an older offer of this page
        if candidate.candidate is None:
            await self._pc.addIceCandidate(None)
            return
        if loopback.is_enabled() and not loopback.is_loopback_candidate(candidate.candidate):
            return
        ice = candidate_from_sdp(candidate.candidate)
        ice.sdpMid = candidate.sdp_mid
        ice.sdpMLineIndex = candidate.sdp_mline_index
        try:
            await self._pc.addIceCandidate(ice)
        except ValueError as exc:
            raise bad_request(f"candidate rejected: {exc}", field="candidate") from None

    # ----------------------------------------------------------------- media

    def start(self) -> None:
        """The call accepted this leg: start reading its audio and watching it."""
        self._joined = True
        if self.ended:
            # It failed (ICE, a closed page) while the call was being set up:
            # report it now; a `_finish` still running reports it when done.
            if self.state == "ended":
                self._on_state(self)
            return
        if self._track is not None and self._reader is None:
            self._reader = asyncio.create_task(self._read(self._track))
        self._watchdog = asyncio.create_task(self._watch())

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind != "audio" or self._track is not None:
            return
        self._track = track
        if self._joined and self._reader is None:
            self._reader = asyncio.create_task(self._read(track))

    def _on_connection_state(self) -> None:
        state = self._pc.connectionState
        if state == "connected" and self.state == "connecting":
            self.state = "connected"
            self._last_sound = self._last_frame = time.monotonic()
            self._log.info("%s leg connected", self.role)
            self._on_state(self)
        elif state == "failed":
            self.hang_up("ice-failed")
        elif state == "closed":
            self.hang_up("hangup")

    async def _read(self, track: MediaStreamTrack) -> None:
        converter = LegConverter()
        try:
            while True:
                frame = await track.recv()
                if not isinstance(frame, av.AudioFrame):
                    continue
                self.frames_in += 1
                self._last_frame = time.monotonic()
                pcm = converter.convert(frame)
                if not is_digital_silence(pcm):
                    self._last_sound = time.monotonic()
                if self._joined:
                    self._on_audio(self.role, pcm, frame)
        except MediaStreamError:
            pass
        finally:
            with contextlib.suppress(Exception):
                tail = converter.flush()
                if tail and self._joined:
                    self._on_audio(self.role, tail, None)
        # The remote track ended by itself: the page closed the connection.
        self.hang_up("hangup")

    async def _watch(self) -> None:
        """End a leg that never connects, stops sending, or stays silent for the timeout."""
        timeout = self._silence_timeout_s
        media_timeout = min(MEDIA_TIMEOUT_S, timeout)
        period = max(0.05, min(1.0, media_timeout / 4))
        while not self.ended:
            await asyncio.sleep(period)
            now = time.monotonic()
            if self.state != "connected":
                if now - self.created > timeout:
                    self.hang_up("ice-failed")
            elif now - self._last_frame > media_timeout:
                self.hang_up("no-media")
            elif now - self._last_sound > timeout:
                self.hang_up("silence")

    # ------------------------------------------------------------------- end

    def hang_up(self, reason: str) -> asyncio.Task[None]:
        """End the leg (idempotent; the first reason wins); the task completes once it has ended."""
        if self._ending is None:
            self.end_reason = reason
            if self.state != "new":
                self.state = "ending"
            self._ending = asyncio.create_task(self._finish())
        return self._ending

    async def _finish(self) -> None:
        current = asyncio.current_task()
        if self._watchdog is not None and self._watchdog is not current:
            self._watchdog.cancel()
        try:
            await asyncio.wait_for(self._pc.close(), CLOSE_TIMEOUT_S)
        except Exception:  # a wedged transport must not keep the leg alive
            self._log.warning("closing the %s leg's peer connection failed", self.role, exc_info=True)
        if self._track is not None:
            self._track.stop()
        reader = self._reader
        if reader is not None and reader is not current and not reader.done():
            done, _ = await asyncio.wait([reader], timeout=CLOSE_TIMEOUT_S)
            if not done:
                reader.cancel()
        self.outbound.stop()
        self.state = "ended"
        if self._joined:
            self._log.info("%s leg ended (%s) after %d frames", self.role, self.end_reason, self.frames_in)
            self._on_state(self)

    async def discard(self) -> None:
        """Drop a leg the call did not accept (bad offer, call gone): no callbacks, no audio."""
        self._joined = False
        await self.hang_up("rejected")
