"""Audio sources for `stream_call`: WAV files (PCM, μ-law, A-law), raw audio, and async iterators.

Each source knows its own format (so the call config is filled in for you)
and yields chunks either paced in real time, as a phone line would deliver
them, or as fast as the server accepts them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

from callpilot.client.wav import WavError, read_info
from callpilot.v1 import call_pb2, common_pb2

DEFAULT_CHUNK_MS = 20
MAX_CHUNK_BYTES = 64 * 1024

_BYTES_PER_SAMPLE = {
    common_pb2.AUDIO_ENCODING_LINEAR16: 2,
    common_pb2.AUDIO_ENCODING_MULAW: 1,
    common_pb2.AUDIO_ENCODING_ALAW: 1,
}


class AudioSourceError(ValueError):
    """The audio cannot be streamed as given (unreadable file, unsupported format)."""


class AudioSource:
    """Headerless audio of a known format, cut into chunks of `chunk_ms`."""

    def __init__(
        self,
        config: call_pb2.AudioConfig,
        *,
        realtime: bool = True,
        chunk_ms: int = DEFAULT_CHUNK_MS,
    ) -> None:
        if config.encoding not in _BYTES_PER_SAMPLE:
            raise AudioSourceError("encoding must be LINEAR16, MULAW or ALAW")
        self.config = config
        self.realtime = realtime
        self.chunk_ms = chunk_ms
        channels = config.channel_count or 1
        self.frame_bytes = _BYTES_PER_SAMPLE[config.encoding] * channels
        frames = max(1, config.sample_rate_hertz * chunk_ms // 1000)
        self.chunk_bytes = min(
            frames * self.frame_bytes, MAX_CHUNK_BYTES // self.frame_bytes * self.frame_bytes
        )

    @property
    def bytes_per_second(self) -> int:
        return self.config.sample_rate_hertz * self.frame_bytes

    def _raw(self) -> AsyncIterator[bytes]:
        raise NotImplementedError

    async def chunks(self) -> AsyncIterator[bytes]:
        """Chunks of whole sample frames; paced to the wall clock when `realtime`."""
        start = time.monotonic()
        sent = 0
        pending = b""
        async for data in self._raw():
            pending += data
            while len(pending) >= self.chunk_bytes:
                chunk, pending = pending[: self.chunk_bytes], pending[self.chunk_bytes :]
                await self._pace(start, sent)
                sent += len(chunk)
                yield chunk
        usable = len(pending) - len(pending) % self.frame_bytes
        if usable:
            await self._pace(start, sent)
            yield pending[:usable]

    async def _pace(self, start: float, sent: int) -> None:
        if not self.realtime:
            return
        due = start + sent / self.bytes_per_second
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


class RawAudio(AudioSource):
    """Headerless samples from bytes or a file."""

    def __init__(self, data: bytes | Path, config: call_pb2.AudioConfig, **kwargs: object) -> None:
        super().__init__(config, **kwargs)  # type: ignore[arg-type]
        self._data = data

    async def _raw(self) -> AsyncIterator[bytes]:
        if isinstance(self._data, bytes):
            yield self._data
            return
        data = await asyncio.to_thread(self._data.read_bytes)
        yield data


class WavFile(AudioSource):
    """A WAV file of any rate, mono or stereo: 16-bit PCM, or G.711 μ-law / A-law.

    G.711 files (format tags 7 and 6, or WAVE_FORMAT_EXTENSIBLE with those
    sub-formats: what contact centers record) are streamed as they are, as
    AUDIO_ENCODING_MULAW / ALAW at their own rate; the server decodes them.
    For stereo, pass `channel_roles` (e.g. agent, customer) to say who is on
    which channel; mono audio is attributed to `mono_role`.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        mono_role: common_pb2.SpeakerRole.ValueType = common_pb2.SPEAKER_ROLE_CUSTOMER,
        channel_roles: tuple[common_pb2.SpeakerRole.ValueType, ...] = (
            common_pb2.SPEAKER_ROLE_AGENT,
            common_pb2.SPEAKER_ROLE_CUSTOMER,
        ),
        realtime: bool = True,
        chunk_ms: int = DEFAULT_CHUNK_MS,
    ) -> None:
        self.path = Path(path)
        try:
            info = read_info(self.path)
        except FileNotFoundError:
            raise AudioSourceError(f"{self.path}: no such file") from None
        except IsADirectoryError:
            raise AudioSourceError(f"{self.path}: is a directory, not a WAV file") from None
        except WavError as exc:
            raise AudioSourceError(
                f"{self.path}: not a PCM WAV file, nor a μ-law or A-law one ({exc})"
            ) from None
        except OSError as exc:
            raise AudioSourceError(f"{self.path}: cannot read it ({exc.strerror})") from None
        rate, channels = info.sample_rate, info.channels
        if channels not in (1, 2):
            raise AudioSourceError(f"{self.path}: {channels} channels; only mono or stereo is supported")
        if not 8000 <= rate <= 48000:
            raise AudioSourceError(f"{self.path}: {rate} Hz; the sample rate must be 8000 to 48000 Hz")
        self.info = info
        config = call_pb2.AudioConfig(encoding=info.encoding, sample_rate_hertz=rate, channel_count=channels)
        if channels == 2:
            config.channel_roles.extend(channel_roles)
        else:
            config.mono_role = mono_role
        super().__init__(config, realtime=realtime, chunk_ms=chunk_ms)

    async def _raw(self) -> AsyncIterator[bytes]:
        def read() -> bytes:
            with self.path.open("rb") as f:
                f.seek(self.info.data_offset)
                return f.read(self.info.data_length)

        yield await asyncio.to_thread(read)


class IteratorAudio(AudioSource):
    """Chunks from any async iterable (a telephony websocket, a microphone)."""

    def __init__(
        self, chunks: AsyncIterable[bytes], config: call_pb2.AudioConfig, *, realtime: bool = False
    ) -> None:
        super().__init__(config, realtime=realtime)
        self._chunks = chunks

    async def _raw(self) -> AsyncIterator[bytes]:
        async for chunk in self._chunks:
            yield chunk
