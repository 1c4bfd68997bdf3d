"""Two μ-law tracks placed on one timeline and interleaved into stereo.

Telephony platforms deliver each party's audio as separate timestamped
packets (Twilio: one `media` message per track and 20 ms). The server wants
one interleaved stereo stream, so every packet is placed at the sample
position its timestamp names, never simply appended:

* a gap (lost packets) becomes silence of the same length, so the other
  party's words keep their time and nothing shifts;
* a packet that arrives late but whose place has not been emitted yet
  overwrites the silence that stood in for it (out-of-order delivery);
* the part of a packet whose place was already emitted is dropped (counted
  in `late_samples`): the server already has audio for that instant.

Emission policy: samples leave once both tracks have reached them. A track
that falls more than `max_skew` samples behind the other (a party who went
quiet on the wire, or a platform sending only one track) is padded with
silence up to that distance, which bounds the added latency. A track marked
absent is never waited for.
"""

from __future__ import annotations

import numpy as np

MULAW_SILENCE = 0xFF
"""G.711 μ-law encodes zero as 0xFF."""


class StereoAligner:
    """Places per-track μ-law samples by position and yields interleaved stereo (channel 0, 1)."""

    def __init__(self, max_skew: int = 1600) -> None:
        self.max_skew = max_skew
        self._pending = [bytearray(), bytearray()]
        self._end = [0, 0]  # absolute end position of each track (emitted + pending)
        self._emitted = 0  # absolute position emitted on both channels
        self._absent = [False, False]
        self.late_samples = 0
        self.gap_samples = 0

    @property
    def emitted(self) -> int:
        return self._emitted

    def end(self, channel: int) -> int:
        return self._end[channel]

    def set_absent(self, channel: int, absent: bool = True) -> None:
        """An absent track is silence as far as the other track has got."""
        self._absent[channel] = absent

    def push(self, channel: int, position: int, samples: bytes) -> None:
        """Place `samples` of `channel` at absolute sample `position` (>= 0)."""
        if position < 0:
            raise ValueError("position must not be negative")
        pending = self._pending[channel]
        if position < self._emitted:
            cut = min(len(samples), self._emitted - position)
            self.late_samples += cut
            samples = samples[cut:]
            position = self._emitted
            if not samples:
                return
        end = self._end[channel]
        if position > end:
            gap = position - end
            self.gap_samples += gap
            pending.extend(bytes([MULAW_SILENCE]) * gap)
            end = position
        offset = position - self._emitted
        overlap = min(len(samples), end - position)
        if overlap > 0:  # rewrite what stood in for this packet
            pending[offset : offset + overlap] = samples[:overlap]
        pending.extend(samples[overlap:])
        self._end[channel] = max(end, position + len(samples))

    def pad(self, channel: int, position: int) -> None:
        """Silence on `channel` up to `position` (a pause, discarded audio, an absent party)."""
        if position > self._end[channel]:
            gap = position - self._end[channel]
            self._pending[channel].extend(bytes([MULAW_SILENCE]) * gap)
            self._end[channel] = position

    def pop(self) -> bytes:
        """Interleaved stereo of every position both tracks have reached (may be empty)."""
        lead = max(self._end)
        for ch in (0, 1):
            other = self._end[1 - ch]
            if self._absent[ch]:
                self.pad(ch, other)
            elif lead - self._end[ch] > self.max_skew:
                self.gap_samples += lead - self.max_skew - self._end[ch]
                self.pad(ch, lead - self.max_skew)
        return self._take(min(self._end) - self._emitted)

    def flush(self) -> bytes:
        """Everything left, the shorter track padded with silence."""
        lead = max(self._end)
        self.pad(0, lead)
        self.pad(1, lead)
        return self._take(lead - self._emitted)

    def _take(self, n: int) -> bytes:
        if n <= 0:
            return b""
        out = np.empty(2 * n, dtype=np.uint8)
        out[0::2] = np.frombuffer(bytes(self._pending[0][:n]), dtype=np.uint8)
        out[1::2] = np.frombuffer(bytes(self._pending[1][:n]), dtype=np.uint8)
        del self._pending[0][:n]
        del self._pending[1][:n]
        self._emitted += n
        return out.tobytes()
