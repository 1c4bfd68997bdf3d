"""AudioDecoder: wire audio in, 16 kHz mono float32 per speaker out.

Rates and lengths are checked with tones (exact expectations); G.711 is
checked with real synthesised speech encoded by sox, decoded by us, and
compared with the same speech as 16-bit PCM.
"""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import numpy as np
import pytest
from callpilot.server.audio import AudioDecoder
from callpilot.server.errors import InvalidArgument
from callpilot.v1 import call_pb2, common_pb2
from support import synth

CUSTOMER = common_pb2.SPEAKER_ROLE_CUSTOMER
AGENT = common_pb2.SPEAKER_ROLE_AGENT
LINEAR16 = common_pb2.AUDIO_ENCODING_LINEAR16
MULAW = common_pb2.AUDIO_ENCODING_MULAW
ALAW = common_pb2.AUDIO_ENCODING_ALAW


def tone(freq: float, rate: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def pcm16(x: np.ndarray) -> bytes:
    return np.round(x * 32767).astype("<i2").tobytes()


def decode_all(decoder: AudioDecoder, data: bytes, chunk_bytes: int) -> dict[int, np.ndarray]:
    """Feed `data` in chunks, flush, and join each speaker's output."""
    parts: dict[int, list[np.ndarray]] = {}
    for i in range(0, len(data), chunk_bytes):
        for role, samples in decoder.decode(data[i : i + chunk_bytes]).items():
            assert samples.dtype == np.float32 and samples.ndim == 1
            parts.setdefault(int(role), []).append(samples)
    for role, samples in decoder.flush().items():
        parts.setdefault(int(role), []).append(samples)
    return {role: np.concatenate(p) for role, p in parts.items()}


def best_correlation(a: np.ndarray, b: np.ndarray, max_lag: int = 64) -> float:
    """Peak normalised correlation over small lags (resamplers may shift by a few samples)."""
    n = min(len(a), len(b)) - 2 * max_lag
    ref = a[max_lag : max_lag + n]
    best = 0.0
    for lag in range(-max_lag, max_lag + 1):
        other = b[max_lag + lag : max_lag + lag + n]
        best = max(best, float(np.corrcoef(ref, other)[0, 1]))
    return best


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
def test_linear16_mono_is_resampled_to_16k_with_the_right_length(rate: int) -> None:
    decoder = AudioDecoder(call_pb2.AudioConfig(encoding=LINEAR16, sample_rate_hertz=rate))
    assert decoder.roles == (CUSTOMER,)  # mono_role defaults to the customer
    seconds = 1.5
    out = decode_all(decoder, pcm16(tone(440, rate, seconds)), chunk_bytes=2 * rate // 50)
    assert set(out) == {CUSTOMER}
    assert abs(len(out[CUSTOMER]) - int(16000 * seconds)) <= 2
    # Same tone, same phase, at 16 kHz: the resampled signal is that tone.
    assert best_correlation(tone(440, 16000, seconds), out[CUSTOMER]) > 0.999


def test_chunking_does_not_change_the_output() -> None:
    """The resampler is stateful across chunks: no clicks at chunk boundaries."""
    data = pcm16(tone(523, 44100, 1.0) + tone(97, 44100, 1.0, amp=0.3))
    cfg = call_pb2.AudioConfig(encoding=LINEAR16, sample_rate_hertz=44100)
    whole = decode_all(AudioDecoder(cfg), data, chunk_bytes=len(data))[CUSTOMER]
    ragged = AudioDecoder(cfg)
    parts: list[np.ndarray] = []
    offsets = [0, 2, 90, 882, 884, 5000, 17640, len(data)]  # uneven, frame aligned
    for a, b in itertools.pairwise(offsets):
        parts.extend(ragged.decode(data[a:b]).values())
    parts.extend(ragged.flush().values())
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-5)


@pytest.mark.parametrize("rate", [8000, 48000])
def test_linear16_stereo_splits_channels_by_role(rate: int) -> None:
    cfg = call_pb2.AudioConfig(
        encoding=LINEAR16, sample_rate_hertz=rate, channel_count=2, channel_roles=[AGENT, CUSTOMER]
    )
    decoder = AudioDecoder(cfg)
    assert decoder.roles == (AGENT, CUSTOMER)
    left, right = tone(300, rate, 1.0), tone(1100, rate, 1.0)
    interleaved = np.stack([left, right], axis=1).reshape(-1)
    out = decode_all(decoder, pcm16(interleaved), chunk_bytes=4 * rate // 50)
    assert set(out) == {AGENT, CUSTOMER}
    for samples in out.values():
        assert abs(len(samples) - 16000) <= 2
    assert best_correlation(tone(300, 16000, 1.0), out[AGENT]) > 0.999
    assert best_correlation(tone(1100, 16000, 1.0), out[CUSTOMER]) > 0.999
    assert abs(float(np.corrcoef(out[AGENT][:15000], out[CUSTOMER][:15000])[0, 1])) < 0.05


def test_two_channels_with_the_same_role_are_mixed() -> None:
    cfg = call_pb2.AudioConfig(
        encoding=LINEAR16, sample_rate_hertz=16000, channel_count=2, channel_roles=[AGENT, AGENT]
    )
    decoder = AudioDecoder(cfg)
    assert decoder.roles == (AGENT,)
    left, right = tone(300, 16000, 0.5, amp=0.3), tone(700, 16000, 0.5, amp=0.3)
    out = decode_all(decoder, pcm16(np.stack([left, right], axis=1).reshape(-1)), chunk_bytes=640)
    np.testing.assert_allclose(out[AGENT], left + right, atol=2e-4)


@pytest.fixture(scope="module")
def speech_8k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth(
        "Thank you for calling, how can I help you today?",
        tmp_path_factory.mktemp("g711") / "speech.wav",
        rate=8000,
    )


@pytest.mark.parametrize(("encoding", "sox_name"), [(MULAW, "u-law"), (ALAW, "a-law")])
def test_g711_decodes_close_to_the_original(
    speech_8k: Path, encoding: common_pb2.AudioEncoding.ValueType, sox_name: str
) -> None:
    coded = speech_8k.with_suffix(f".{sox_name}.raw")
    reference = speech_8k.with_suffix(".s16.raw")
    subprocess.run(
        ["sox", str(speech_8k), "-t", "raw", "-e", sox_name, "-b", "8", "-c", "1", str(coded)], check=True
    )
    subprocess.run(
        ["sox", str(speech_8k), "-t", "raw", "-e", "signed", "-b", "16", "-c", "1", str(reference)],
        check=True,
    )
    g711 = coded.read_bytes()
    out = decode_all(
        AudioDecoder(call_pb2.AudioConfig(encoding=encoding, sample_rate_hertz=8000)), g711, chunk_bytes=160
    )[CUSTOMER]
    ref = decode_all(
        AudioDecoder(call_pb2.AudioConfig(encoding=LINEAR16, sample_rate_hertz=8000)),
        reference.read_bytes(),
        chunk_bytes=320,
    )[CUSTOMER]
    assert abs(len(out) - 2 * len(g711)) <= 2
    assert len(out) == len(ref)
    assert float(np.corrcoef(out, ref)[0, 1]) > 0.99


def test_g711_stereo_needs_whole_frames() -> None:
    cfg = call_pb2.AudioConfig(
        encoding=MULAW, sample_rate_hertz=8000, channel_count=2, channel_roles=[CUSTOMER, AGENT]
    )
    decoder = AudioDecoder(cfg)
    assert set(decoder.decode(bytes(320))) <= {CUSTOMER, AGENT}
    with pytest.raises(InvalidArgument) as err:
        decoder.decode(bytes(161))
    (violation,) = err.value.violations
    assert violation.field == "audio.data"
    assert "multiple of 2 bytes" in violation.description


@pytest.mark.parametrize(
    ("cfg", "size", "multiple"),
    [
        (call_pb2.AudioConfig(encoding=LINEAR16, sample_rate_hertz=16000), 321, 2),
        (
            call_pb2.AudioConfig(
                encoding=LINEAR16, sample_rate_hertz=16000, channel_count=2, channel_roles=[CUSTOMER, AGENT]
            ),
            642,
            4,
        ),
    ],
)
def test_linear16_partial_frames_are_rejected(cfg: call_pb2.AudioConfig, size: int, multiple: int) -> None:
    with pytest.raises(InvalidArgument) as err:
        AudioDecoder(cfg).decode(bytes(size))
    (violation,) = err.value.violations
    assert violation.field == "audio.data"
    assert f"multiple of {multiple} bytes" in violation.description
    assert str(size) in violation.description


def test_empty_chunk_gives_nothing() -> None:
    decoder = AudioDecoder(call_pb2.AudioConfig(encoding=ALAW, sample_rate_hertz=8000))
    assert decoder.decode(b"") == {}


@pytest.mark.parametrize(
    ("cfg", "field", "reason"),
    [
        (call_pb2.AudioConfig(sample_rate_hertz=16000), "config.audio.encoding", "REQUIRED"),
        (
            call_pb2.AudioConfig(encoding=9, sample_rate_hertz=16000),  # type: ignore[arg-type]
            "config.audio.encoding",
            "UNSUPPORTED",
        ),
        (call_pb2.AudioConfig(encoding=LINEAR16), "config.audio.sample_rate_hertz", "OUT_OF_RANGE"),
        (
            call_pb2.AudioConfig(encoding=LINEAR16, sample_rate_hertz=96000),
            "config.audio.sample_rate_hertz",
            "OUT_OF_RANGE",
        ),
        (
            call_pb2.AudioConfig(encoding=MULAW, sample_rate_hertz=7999),
            "config.audio.sample_rate_hertz",
            "OUT_OF_RANGE",
        ),
        (
            call_pb2.AudioConfig(encoding=LINEAR16, sample_rate_hertz=16000, channel_count=3),
            "config.audio.channel_count",
            "OUT_OF_RANGE",
        ),
        (
            call_pb2.AudioConfig(
                encoding=LINEAR16, sample_rate_hertz=16000, channel_count=2, channel_roles=[AGENT]
            ),
            "config.audio.channel_roles",
            "INVALID",
        ),
        (
            call_pb2.AudioConfig(
                encoding=LINEAR16,
                sample_rate_hertz=16000,
                channel_count=2,
                channel_roles=[CUSTOMER, common_pb2.SPEAKER_ROLE_UNSPECIFIED],
            ),
            "config.audio.channel_roles[1]",
            "INVALID",
        ),
        (
            call_pb2.AudioConfig(encoding=LINEAR16, sample_rate_hertz=16000, mono_role=7),  # type: ignore[arg-type]
            "config.audio.mono_role",
            "INVALID",
        ),
    ],
)
def test_bad_configs_name_the_field(cfg: call_pb2.AudioConfig, field: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        AudioDecoder(cfg)
    assert [(v.field, v.reason) for v in err.value.violations] == [(field, reason)]
    assert err.value.violations[0].description  # a sentence a person can act on
    assert field in err.value.message


def test_every_bad_field_is_reported_at_once() -> None:
    with pytest.raises(InvalidArgument) as err:
        AudioDecoder(call_pb2.AudioConfig(sample_rate_hertz=100, channel_count=5))
    fields = {v.field for v in err.value.violations}
    assert fields == {"config.audio.encoding", "config.audio.sample_rate_hertz", "config.audio.channel_count"}


def test_mono_role_agent() -> None:
    decoder = AudioDecoder(call_pb2.AudioConfig(encoding=LINEAR16, sample_rate_hertz=16000, mono_role=AGENT))
    out = decoder.decode(pcm16(tone(200, 16000, 0.1)))
    assert set(out) == {AGENT}
    assert len(out[AGENT]) == 1600
