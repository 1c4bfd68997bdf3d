"""`WavFile` and `callpilot call` stream μ-law and A-law WAVs as they are (contact-center recordings).

The files are written at test time: by sox from synthesised speech (format
tags 7 and 6, with the cbSize and fact chunk sox writes), and by hand for
WAVE_FORMAT_EXTENSIBLE, whose header sox does not write for G.711.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from callpilot.client import AudioSourceError, WavFile
from callpilot.client.wav import GUID_TAIL
from callpilot.v1 import common_pb2
from support import ServerProcess, synth

CALLPILOT = str(Path(sys.executable).parent / "callpilot")
SENTENCE = "I would like a refund for order seven eight nine zero one please"


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth(SENTENCE, tmp_path_factory.mktemp("g711") / "speech.wav")


def _sox(*args: str | Path) -> None:
    subprocess.run(["sox", *map(str, args)], check=True, capture_output=True, timeout=60)


def _raw_samples(path: Path) -> bytes:
    """The file's samples as sox reads them, still G.711-encoded (sox's raw output keeps the encoding)."""
    raw = path.with_suffix(".raw")
    _sox(path, "-t", "raw", raw)
    return raw.read_bytes()


async def _stream(source: WavFile) -> bytes:
    return b"".join([chunk async for chunk in source.chunks()])


def _extensible(path: Path, sub_tag: int, data: bytes, *, rate: int = 8000, channels: int = 1) -> Path:
    """A WAVE_FORMAT_EXTENSIBLE file with a LIST chunk of odd length before the data (padding)."""
    bits = 8 if sub_tag in (6, 7) else 16
    align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 0xFFFE, channels, rate, rate * align, align, bits)
    fmt += (
        struct.pack("<HHI", 22, bits, 0x4 if channels == 1 else 0x3) + struct.pack("<H", sub_tag) + GUID_TAIL
    )
    listing = b"INFOISFT\x03\x00\x00\x00me\x00"  # 15 bytes: padded to 16
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"LIST" + struct.pack("<I", len(listing)) + listing + b"\x00"
    body += b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


async def test_mulaw_wav_from_sox(speech: Path, tmp_path: Path) -> None:
    path = tmp_path / "ulaw.wav"
    _sox(speech, "-r", "8000", "-e", "u-law", path)
    source = WavFile(path, realtime=False)
    config = source.config
    assert config.encoding == common_pb2.AUDIO_ENCODING_MULAW
    assert (config.sample_rate_hertz, config.channel_count) == (8000, 1)
    assert config.mono_role == common_pb2.SPEAKER_ROLE_CUSTOMER
    assert source.chunk_bytes == 160  # 20 ms of 8 kHz, one byte a sample
    assert await _stream(source) == _raw_samples(path)


async def test_alaw_stereo_wav_from_sox(speech: Path, tmp_path: Path) -> None:
    path = tmp_path / "alaw.wav"
    _sox(speech, "-e", "a-law", "-c", "2", path)
    roles = (common_pb2.SPEAKER_ROLE_CUSTOMER, common_pb2.SPEAKER_ROLE_AGENT)
    source = WavFile(path, realtime=False, channel_roles=roles)
    config = source.config
    assert config.encoding == common_pb2.AUDIO_ENCODING_ALAW
    assert (config.sample_rate_hertz, config.channel_count) == (16000, 2)
    assert tuple(config.channel_roles) == roles
    streamed = await _stream(source)
    assert streamed == _raw_samples(path) and len(streamed) % 2 == 0


@pytest.mark.parametrize(
    ("sub_tag", "encoding"),
    [(7, common_pb2.AUDIO_ENCODING_MULAW), (6, common_pb2.AUDIO_ENCODING_ALAW)],
)
async def test_wave_format_extensible_g711(tmp_path: Path, sub_tag: int, encoding: int) -> None:
    data = bytes(range(256)) * 8 + b"\x7f"  # odd length: the last sample still counts
    path = _extensible(tmp_path / "ext.wav", sub_tag, data, rate=8000)
    source = WavFile(path, realtime=False)
    assert source.config.encoding == encoding and source.config.sample_rate_hertz == 8000
    assert await _stream(source) == data


async def test_wave_format_extensible_pcm_still_works(tmp_path: Path) -> None:
    data = struct.pack("<4h", 0, 1000, -1000, 32767)
    source = WavFile(_extensible(tmp_path / "pcm.wav", 1, data, rate=16000), realtime=False)
    assert source.config.encoding == common_pb2.AUDIO_ENCODING_LINEAR16
    assert await _stream(source) == data


def test_other_formats_are_refused_with_a_way_out(tmp_path: Path, speech: Path) -> None:
    float_ext = _extensible(tmp_path / "float.wav", 3, b"\x00" * 16)
    with pytest.raises(AudioSourceError, match=r"sub-format|not PCM") as err:
        WavFile(float_ext)
    assert "sox" in str(err.value)
    adpcm = tmp_path / "adpcm.wav"
    _sox(speech, "-e", "ima-adpcm", adpcm)
    with pytest.raises(AudioSourceError, match="format tag 0x0011 is not PCM, μ-law or A-law"):
        WavFile(adpcm)
    eight_bit = tmp_path / "u8.wav"
    _sox(speech, "-b", "8", "-e", "unsigned-integer", eight_bit)
    with pytest.raises(AudioSourceError, match="8-bit PCM samples; convert to 16-bit PCM"):
        WavFile(eight_bit)
    not_wav = tmp_path / "x.wav"
    not_wav.write_text("hello")
    with pytest.raises(AudioSourceError, match="no RIFF/WAVE header"):
        WavFile(not_wav)


def test_cli_streams_a_mulaw_recording(speech: Path, tmp_path: Path) -> None:
    """`callpilot call` on a μ-law file against a real server: the server decodes it and hears speech."""
    path = tmp_path / "call.wav"
    _sox(speech, "-r", "8000", "-e", "u-law", path, "pad", "0.5", "1.5")
    server = ServerProcess(
        {"CALLPILOT_STT": "null", "CALLPILOT_DATA_DIR": str(tmp_path / "data")}, tmp_path / "server.log"
    ).start()
    try:
        result = subprocess.run(
            [CALLPILOT, "call", str(path), "--server", server.address, "--fast", "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ},
        )
    finally:
        assert server.stop() == 0
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert "callStarted" in events[0] and "callEnded" in events[-1]
    finals = [e["transcript"] for e in events if e.get("transcript", {}).get("isFinal")]
    assert finals, "the null engine's endpointing found the utterance in the decoded G.711 audio"
