"""Client audio bytes -> one 16 kHz mono float32 signal per speaker.

The STT engines all take `stt.base.SAMPLE_RATE` mono float32 per speaker, so
this is the one place that knows about wire encodings, interleaving and
sample rates. It runs on the event loop for every chunk, so it is written as
a handful of vectorised numpy operations plus one streaming soxr call; it
never does per-sample Python work.

G.711 is decoded through a 256-entry table built once from FFmpeg's own
pcm_mulaw / pcm_alaw decoders (via PyAV), so the expansion is the reference
one rather than a re-derived formula.
"""

from __future__ import annotations

import functools
from typing import cast

import av
import numpy as np
import numpy.typing as npt
import soxr
from av.audio.codeccontext import AudioCodecContext
from callpilot.server.errors import InvalidArgument, Violation
from callpilot.server.stt.base import SAMPLE_RATE, AudioArray
from callpilot.v1 import call_pb2, common_pb2

MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 48_000
RESAMPLE_QUALITY = "HQ"
"""soxr "HQ": about 40 ms of delay at 8 kHz in, inaudible artefacts, a few µs per 20 ms chunk."""

_ROLES = (common_pb2.SPEAKER_ROLE_CUSTOMER, common_pb2.SPEAKER_ROLE_AGENT)
_ENCODING_NAMES: dict[int, str] = {
    common_pb2.AUDIO_ENCODING_LINEAR16: "LINEAR16",
    common_pb2.AUDIO_ENCODING_MULAW: "MULAW",
    common_pb2.AUDIO_ENCODING_ALAW: "ALAW",
}
_G711_CODECS: dict[int, str] = {
    common_pb2.AUDIO_ENCODING_MULAW: "pcm_mulaw",
    common_pb2.AUDIO_ENCODING_ALAW: "pcm_alaw",
}
_EMPTY: AudioArray = np.zeros(0, dtype=np.float32)


@functools.cache
def g711_table(codec: str) -> npt.NDArray[np.float32]:
    """Float value of each of the 256 byte codes, decoded by FFmpeg's `codec` ("pcm_mulaw"/"pcm_alaw")."""
    ctx = cast(AudioCodecContext, av.CodecContext.create(codec, "r"))
    ctx.sample_rate = 8000
    ctx.layout = "mono"
    frames = ctx.decode(av.Packet(bytes(range(256))))
    pcm = np.concatenate([frame.to_ndarray().reshape(-1) for frame in frames])
    if pcm.shape != (256,) or pcm.dtype != np.int16:  # pragma: no cover - guards a PyAV behaviour change
        raise RuntimeError(f"unexpected {codec} decoder output: {pcm.dtype} {pcm.shape}")
    table: npt.NDArray[np.float32] = (pcm.astype(np.float32) / 32768.0).astype(np.float32)
    table.setflags(write=False)
    return table


class AudioDecoder:
    """Stateful decoder of one call's audio stream (one instance per call).

    Construction validates the `AudioConfig` and raises `InvalidArgument`
    naming every bad field under `field_prefix`. `decode` must be fed the
    chunks in order: the resamplers keep state across chunks so chunk
    boundaries do not click, which is also why `flush` exists (it drains the
    resamplers' last few milliseconds at the end of the call).

    Two channels carrying different roles are resampled by one two-channel
    soxr stream and split; two channels of the same role are summed (and
    clipped) into one speaker first, which is both correct and half the work.
    """

    def __init__(self, config: call_pb2.AudioConfig, *, field_prefix: str = "config.audio") -> None:
        self._encoding, self._rate, self._channels, roles = _validate(config, field_prefix)
        self._mix = self._channels == 2 and roles[0] == roles[1]
        self._roles: tuple[common_pb2.SpeakerRole.ValueType, ...] = roles[:1] if self._mix else roles
        sample_bytes = 2 if self._encoding == common_pb2.AUDIO_ENCODING_LINEAR16 else 1
        self._bytes_per_frame = self._channels * sample_bytes
        codec = _G711_CODECS.get(self._encoding)
        self._table = g711_table(codec) if codec is not None else None
        self._resampler = (
            None
            if self._rate == SAMPLE_RATE
            else soxr.ResampleStream(
                self._rate, SAMPLE_RATE, len(self._roles), dtype="float32", quality=RESAMPLE_QUALITY
            )
        )
        self._flushed = False

    @property
    def roles(self) -> tuple[common_pb2.SpeakerRole.ValueType, ...]:
        """The speakers this stream carries, in channel order (one entry when mono or mixed)."""
        return self._roles

    @property
    def bytes_per_frame(self) -> int:
        """Bytes of one sample frame (all channels); every chunk must be a multiple of it."""
        return self._bytes_per_frame

    @property
    def sample_rate(self) -> int:
        return self._rate

    def decode(self, data: bytes) -> dict[common_pb2.SpeakerRole.ValueType, AudioArray]:
        """Decode one chunk; returns only speakers with new samples (resampler delay may hold some back).

        Raises `InvalidArgument` on field "audio.data" when `data` is not a
        whole number of sample frames: the stream has lost alignment and
        every later sample would be garbage, so it is rejected rather than
        patched up.
        """
        if not data:
            return {}
        if self._flushed:
            raise RuntimeError("AudioDecoder.decode called after flush")
        if len(data) % self._bytes_per_frame:
            raise InvalidArgument(
                Violation(
                    field="audio.data",
                    description=(
                        f"chunk of {len(data)} bytes is not a whole number of sample frames: "
                        f"{_ENCODING_NAMES[self._encoding]} with {self._channels} channel(s) needs a "
                        f"multiple of {self._bytes_per_frame} bytes; split audio only at frame boundaries"
                    ),
                    reason="INVALID_LENGTH",
                )
            )
        frames = self._to_float(data)
        if self._resampler is not None:
            frames = cast(npt.NDArray[np.float32], self._resampler.resample_chunk(frames))
        return self._split(frames)

    def flush(self) -> dict[common_pb2.SpeakerRole.ValueType, AudioArray]:
        """Return the samples still inside the resampler; call once, after the last `decode`."""
        if self._flushed or self._resampler is None:
            self._flushed = True
            return {}
        self._flushed = True
        empty = np.zeros((0, len(self._roles)), dtype=np.float32)
        tail: npt.NDArray[np.float32] = self._resampler.resample_chunk(empty, last=True)
        return self._split(tail)

    def _to_float(self, data: bytes) -> npt.NDArray[np.float32]:
        """Bytes -> float32 frames shaped (n, len(roles)), channels already mixed when needed."""
        samples: npt.NDArray[np.float32]
        if self._table is None:
            samples = np.frombuffer(data, dtype="<i2").astype(np.float32)
            samples *= np.float32(1.0 / 32768.0)
        else:
            samples = self._table[np.frombuffer(data, dtype=np.uint8)]
        frames = samples.reshape(-1, self._channels)
        if self._mix:
            mixed: npt.NDArray[np.float32] = frames.sum(axis=1, keepdims=True, dtype=np.float32)
            np.clip(mixed, -1.0, 1.0, out=mixed)
            return mixed
        return frames

    def _split(self, frames: npt.NDArray[np.float32]) -> dict[common_pb2.SpeakerRole.ValueType, AudioArray]:
        if frames.shape[0] == 0:
            return {}
        return {
            role: np.ascontiguousarray(frames[:, i], dtype=np.float32) for i, role in enumerate(self._roles)
        }


def _validate(
    config: call_pb2.AudioConfig, prefix: str
) -> tuple[int, int, int, tuple[common_pb2.SpeakerRole.ValueType, ...]]:
    """Check every field at once so the client learns all its mistakes from one error."""
    violations: list[Violation] = []
    encoding = int(config.encoding)
    if encoding == common_pb2.AUDIO_ENCODING_UNSPECIFIED:
        violations.append(
            Violation(
                f"{prefix}.encoding",
                "set the audio encoding: LINEAR16 (16-bit little-endian PCM), MULAW or ALAW (G.711)",
                "REQUIRED",
            )
        )
    elif encoding not in _ENCODING_NAMES:
        violations.append(
            Violation(
                f"{prefix}.encoding",
                f"encoding {encoding} is not supported; use LINEAR16, MULAW or ALAW",
                "UNSUPPORTED",
            )
        )
    rate = int(config.sample_rate_hertz)
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        what = "is missing" if rate == 0 else f"is {rate} Hz"
        violations.append(
            Violation(
                f"{prefix}.sample_rate_hertz",
                f"sample rate {what}; it must be between {MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE} Hz "
                "(8000 for telephony, 16000 or 48000 for wideband)",
                "OUT_OF_RANGE",
            )
        )
    channels = int(config.channel_count) or 1
    roles: tuple[common_pb2.SpeakerRole.ValueType, ...] = ()
    if channels not in (1, 2):
        violations.append(
            Violation(
                f"{prefix}.channel_count",
                f"channel count is {channels}; send 1 (mono) or 2 (one speaker per channel)",
                "OUT_OF_RANGE",
            )
        )
    elif channels == 1:
        mono = config.mono_role or common_pb2.SPEAKER_ROLE_CUSTOMER
        if mono not in _ROLES:
            violations.append(
                Violation(
                    f"{prefix}.mono_role",
                    f"mono role {int(mono)} is not a speaker; "
                    "use SPEAKER_ROLE_CUSTOMER or SPEAKER_ROLE_AGENT",
                    "INVALID",
                )
            )
        roles = (mono,)
    elif len(config.channel_roles) != 2:
        violations.append(
            Violation(
                f"{prefix}.channel_roles",
                f"two-channel audio needs exactly two channel roles (one per channel, in channel order); "
                f"got {len(config.channel_roles)}",
                "INVALID",
            )
        )
    else:
        for i, role in enumerate(config.channel_roles):
            if role not in _ROLES:
                violations.append(
                    Violation(
                        f"{prefix}.channel_roles[{i}]",
                        f"channel {i} has role {int(role)}; each channel must be SPEAKER_ROLE_CUSTOMER "
                        "or SPEAKER_ROLE_AGENT",
                        "INVALID",
                    )
                )
        roles = tuple(config.channel_roles)
    if violations:
        raise InvalidArgument(violations)
    return encoding, rate, channels, roles
