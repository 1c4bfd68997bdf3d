"""The grpc-web wire format: content types, frames, trailers, text mode.

Pure functions with no I/O, so every rule of the protocol is unit-tested on
its own. The protocol is the one of grpc/grpc's doc/PROTOCOL-WEB.md:

* a body is a sequence of frames: 1 flag byte, a 4-byte big-endian length,
  then that many bytes; flag bit 0x80 marks the trailer frame (the last one),
  bit 0x01 a compressed payload (not supported here: browsers cannot
  compress frames);
* the trailer frame holds `name:value\\r\\n` lines with lower-case names;
* `application/grpc-web-text` bodies are base64 of the same frames, possibly
  as several padded base64 chunks one after another;
* `grpc-message` is percent-encoded and binary (`-bin`) metadata is base64,
  as in gRPC over HTTP/2.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

DATA_FLAG = 0x00
TRAILER_FLAG = 0x80
COMPRESSED_FLAG = 0x01
HEADER_LEN = 5

BINARY_CONTENT_TYPE = "application/grpc-web+proto"
TEXT_CONTENT_TYPE = "application/grpc-web-text+proto"


class WireError(ValueError):
    """A malformed grpc-web request; the message says what is wrong.

    The proxy answers it with INVALID_ARGUMENT (the client sent something
    wrong), or UNIMPLEMENTED for an `Unsupported` feature of the protocol.
    """


class Unsupported(WireError):
    """A valid grpc-web feature the gateway does not implement (compressed frames)."""


@dataclass(frozen=True, slots=True)
class ContentType:
    """A parsed grpc-web content type."""

    text: bool  # base64 (`application/grpc-web-text`) rather than binary
    codec: str  # "proto", or what followed the `+` ("json", "thrift", ...)


def parse_content_type(value: str | None) -> ContentType | None:
    """`application/grpc-web[-text][+codec][; params]`, or None when it is not grpc-web."""
    if not value:
        return None
    mime = value.split(";", 1)[0].strip().lower()
    for prefix, text in (("application/grpc-web-text", True), ("application/grpc-web", False)):
        if mime == prefix:
            return ContentType(text=text, codec="proto")
        if mime.startswith(prefix + "+"):
            codec = mime[len(prefix) + 1 :]
            return ContentType(text=text, codec=codec or "proto")
    return None


def accepts_text(accept: str | None) -> bool:
    """True when the client asks for a base64 response stream (`Accept: application/grpc-web-text`)."""
    if not accept:
        return False
    return any(
        part.split(";", 1)[0].strip().lower().startswith("application/grpc-web-text")
        for part in accept.split(",")
    )


# ------------------------------------------------------------------ frames


def encode_frame(payload: bytes, flag: int = DATA_FLAG) -> bytes:
    return struct.pack(">BI", flag, len(payload)) + payload


@dataclass(frozen=True, slots=True)
class Frame:
    flag: int
    payload: bytes

    @property
    def is_trailer(self) -> bool:
        return bool(self.flag & TRAILER_FLAG)

    @property
    def is_compressed(self) -> bool:
        return bool(self.flag & COMPRESSED_FLAG)


def parse_frames(body: bytes) -> list[Frame]:
    """Split a whole body into frames; raises WireError on a truncated or malformed body."""
    frames: list[Frame] = []
    view = memoryview(body)
    offset = 0
    while offset < len(view):
        if len(view) - offset < HEADER_LEN:
            raise WireError(f"truncated frame header at byte {offset}")
        flag, length = struct.unpack_from(">BI", view, offset)
        if flag & ~(TRAILER_FLAG | COMPRESSED_FLAG):
            raise WireError(f"unknown frame flags 0x{flag:02x} at byte {offset}")
        start = offset + HEADER_LEN
        if len(view) - start < length:
            raise WireError(f"frame at byte {offset} declares {length} bytes but {len(view) - start} follow")
        frames.append(Frame(flag, bytes(view[start : start + length])))
        offset = start + length
    return frames


def single_request_message(frames: list[Frame]) -> bytes:
    """The one message of a unary or server-streaming request."""
    data = [f for f in frames if not f.is_trailer]
    if any(f.is_compressed for f in data):
        raise Unsupported("compressed grpc-web frames are not supported; send the message uncompressed")
    if len(data) != 1:
        raise WireError(f"expected exactly one request message, got {len(data)}")
    return data[0].payload


# --------------------------------------------------------------- text mode

_B64_CHUNK = re.compile(rb"[A-Za-z0-9+/]*={0,2}")


def decode_text_body(body: bytes) -> bytes:
    """Decode a `grpc-web-text` body: base64, possibly several padded chunks back to back.

    Whitespace is ignored. A chunk ends at its padding (`=`); the next one
    starts right after it, so `base64(a) + base64(b)` decodes to `a + b`.
    """
    compact = re.sub(rb"\s+", b"", body)
    out = bytearray()
    pos = 0
    while pos < len(compact):
        match = _B64_CHUNK.match(compact, pos)
        assert match is not None  # the pattern matches the empty string
        chunk = match.group(0)
        if not chunk:
            raise WireError(f"invalid base64 character at offset {pos} of the grpc-web-text body")
        if len(chunk) % 4 == 1:
            raise WireError("truncated base64 in the grpc-web-text body")
        try:
            out += base64.b64decode(chunk + b"=" * (-len(chunk) % 4), validate=True)
        except binascii.Error as exc:
            raise WireError(f"invalid base64 in the grpc-web-text body: {exc}") from None
        pos = match.end()
    return bytes(out)


def encode_text(data: bytes) -> bytes:
    """Base64 of one or more whole frames: a padded chunk the client can decode on its own."""
    return base64.b64encode(data)


# ---------------------------------------------------------------- metadata


def percent_encode(message: str) -> str:
    """grpc-message encoding: UTF-8, with bytes outside 0x20..0x7E and `%` as %XX."""
    out = []
    for byte in message.encode("utf-8"):
        if 0x20 <= byte <= 0x7E and byte != 0x25:
            out.append(chr(byte))
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def encode_binary_header(value: bytes) -> str:
    """Binary metadata as unpadded base64 (what the gRPC spec asks implementations to emit)."""
    return base64.b64encode(value).decode("ascii").rstrip("=")


def decode_binary_header(value: str) -> bytes:
    """Binary metadata from padded or unpadded, standard or URL-safe base64."""
    raw = value.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except binascii.Error:
        raise WireError("a -bin header is not valid base64") from None


_HEADER_NAME = re.compile(r"^[0-9a-z_.\-]+$")


def valid_metadata_key(key: str) -> bool:
    return bool(_HEADER_NAME.match(key)) and not key.startswith("grpc-")


def metadata_value(key: str, value: str | bytes) -> str:
    """One metadata value as an HTTP header value (base64 for `-bin` keys)."""
    if key.endswith("-bin"):
        return encode_binary_header(value if isinstance(value, bytes) else value.encode())
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value


def encode_trailers(fields: Iterable[tuple[str, str]]) -> bytes:
    """The trailer frame: `name:value\\r\\n` lines with lower-case names."""
    block = "".join(f"{name.lower()}:{value}\r\n" for name, value in fields)
    return encode_frame(block.encode("latin-1", errors="replace"), TRAILER_FLAG)


def status_fields(
    code: int, message: str, details: bytes | None, extra: Iterable[tuple[str, str | bytes]] = ()
) -> Iterator[tuple[str, str]]:
    """grpc-status, grpc-message, grpc-status-details-bin and other trailing metadata."""
    yield "grpc-status", str(code)
    yield "grpc-message", percent_encode(message)
    if details:
        yield "grpc-status-details-bin", encode_binary_header(details)
    for key, value in extra:
        if valid_metadata_key(key):
            yield key, metadata_value(key, value)


# ---------------------------------------------------------------- deadlines

_TIMEOUT = re.compile(r"^(\d{1,8})([HMSmun])$")
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def parse_timeout(value: str | None) -> float | None:
    """`grpc-timeout` (at most 8 digits and a unit) in seconds; None when absent."""
    if value is None or value == "":
        return None
    match = _TIMEOUT.match(value.strip())
    if not match:
        raise WireError(f"grpc-timeout {value!r} is not 1 to 8 digits followed by one of H M S m u n")
    return int(match.group(1)) * _TIMEOUT_UNITS[match.group(2)]
