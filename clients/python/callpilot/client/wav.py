"""Reading WAV headers: 16-bit PCM, and G.711 μ-law / A-law as contact centers record them.

Python's `wave` module reads only PCM (format tag 1), so this small RIFF
reader is the SDK's own. It accepts format tags 1 (PCM), 6 (A-law) and 7
(μ-law), and WAVE_FORMAT_EXTENSIBLE (0xFFFE) whose sub-format GUID is one of
those three; it returns where the samples are, never the samples themselves,
so opening a long recording reads only its header. A data chunk whose size is
0 or 0xFFFFFFFF (a recorder that never finished the header) or larger than the
file runs to the end of the file.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from callpilot.v1 import common_pb2

PCM = 0x0001
ALAW = 0x0006
MULAW = 0x0007
EXTENSIBLE = 0xFFFE
# KSDATAFORMAT_SUBTYPE_*: the format tag in the first two bytes, then this fixed tail.
GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"

ENCODINGS = {
    PCM: common_pb2.AUDIO_ENCODING_LINEAR16,
    ALAW: common_pb2.AUDIO_ENCODING_ALAW,
    MULAW: common_pb2.AUDIO_ENCODING_MULAW,
}
BITS = {PCM: 16, ALAW: 8, MULAW: 8}
NAMES = {PCM: "16-bit PCM", ALAW: "A-law", MULAW: "μ-law"}
# Chunks skipped before `fmt ` and `data` (LIST, fact, bext...) are bounded in number.
MAX_CHUNKS = 64


class WavError(ValueError):
    """Not a WAV file this SDK can stream; the message says what it is and how to convert it."""


@dataclass(frozen=True, slots=True)
class WavInfo:
    """What a WAV file holds and where its samples are."""

    format_tag: int  # PCM, ALAW or MULAW (an EXTENSIBLE file reports its sub-format)
    encoding: common_pb2.AudioEncoding.ValueType
    sample_rate: int
    channels: int
    bits_per_sample: int
    data_offset: int
    data_length: int

    @property
    def format_name(self) -> str:
        return NAMES[self.format_tag]


def read_info(path: Path) -> WavInfo:
    """Parse `path`'s header; raises FileNotFoundError, or WavError naming the problem."""
    with path.open("rb") as f:
        size = f.seek(0, 2)
        f.seek(0)
        return _parse(f, size)


def _parse(f: BinaryIO, size: int) -> WavInfo:
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise WavError("not a WAV file (no RIFF/WAVE header)")
    fmt: tuple[int, int, int, int] | None = None
    for _ in range(MAX_CHUNKS):
        header = f.read(8)
        if len(header) < 8:
            break
        chunk_id, length = header[:4], struct.unpack("<I", header[4:])[0]
        start = f.tell()
        if chunk_id == b"fmt ":
            fmt = _parse_fmt(f.read(min(length, 64)), length)
        elif chunk_id == b"data":
            if fmt is None:
                raise WavError("the data chunk comes before the fmt chunk")
            tag, channels, rate, bits = fmt
            available = size - start
            if length in (0, 0xFFFFFFFF) or length > available:
                length = available
            return WavInfo(tag, ENCODINGS[tag], rate, channels, bits, start, length)
        f.seek(start + length + (length & 1))  # chunks are padded to an even length
    if fmt is None:
        raise WavError("no fmt chunk")
    raise WavError("no data chunk")


def _parse_fmt(body: bytes, length: int) -> tuple[int, int, int, int]:
    """(format tag, channels, rate, bits per sample) from a fmt chunk, checked."""
    if length < 16 or len(body) < 16:
        raise WavError("the fmt chunk is truncated")
    tag, channels, rate, _byte_rate, _align, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == EXTENSIBLE:
        if len(body) < 40:
            raise WavError("the WAVE_FORMAT_EXTENSIBLE fmt chunk is truncated")
        sub = body[24:40]
        if sub[2:] != GUID_TAIL:
            raise WavError("WAVE_FORMAT_EXTENSIBLE with an unknown sub-format; " + _CONVERT)
        tag = struct.unpack("<H", sub[:2])[0]
    if tag not in ENCODINGS:
        raise WavError(f"format tag {tag:#06x} is not PCM, μ-law or A-law; " + _CONVERT)
    if bits != BITS[tag]:
        raise WavError(
            f"{bits}-bit {'PCM' if tag == PCM else NAMES[tag]} samples; "
            + ("convert to 16-bit PCM (sox in.wav -b 16 out.wav)" if tag == PCM else _CONVERT)
        )
    return tag, channels, rate, bits


_CONVERT = "convert to 16-bit PCM (sox in.wav -e signed-integer -b 16 out.wav)"
