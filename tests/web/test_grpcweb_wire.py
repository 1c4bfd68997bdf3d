"""The grpc-web wire format, rule by rule (no I/O)."""

from __future__ import annotations

import base64

import pytest
from callpilot.gateway.grpcweb.wire import (
    BINARY_CONTENT_TYPE,
    ContentType,
    WireError,
    accepts_text,
    decode_binary_header,
    decode_text_body,
    encode_binary_header,
    encode_frame,
    encode_trailers,
    parse_content_type,
    parse_frames,
    parse_timeout,
    percent_encode,
    single_request_message,
    status_fields,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("application/grpc-web", ContentType(text=False, codec="proto")),
        ("application/grpc-web+proto", ContentType(text=False, codec="proto")),
        ("Application/GRPC-Web+Proto; charset=utf-8", ContentType(text=False, codec="proto")),
        ("application/grpc-web-text", ContentType(text=True, codec="proto")),
        ("application/grpc-web-text+proto", ContentType(text=True, codec="proto")),
        ("application/grpc-web+json", ContentType(text=False, codec="json")),
        ("application/grpc", None),
        ("application/json", None),
        ("", None),
        (None, None),
    ],
)
def test_content_types(value: str | None, expected: ContentType | None) -> None:
    assert parse_content_type(value) == expected


def test_accept_asks_for_text() -> None:
    assert accepts_text("application/grpc-web-text")
    assert accepts_text("text/html, application/grpc-web-text;q=0.9")
    assert not accepts_text("application/grpc-web+proto")
    assert not accepts_text(None)


def test_frames_round_trip() -> None:
    body = encode_frame(b"hello") + encode_frame(b"") + encode_trailers([("grpc-status", "0")])
    frames = parse_frames(body)
    assert [(f.flag, f.payload) for f in frames] == [(0, b"hello"), (0, b""), (0x80, b"grpc-status:0\r\n")]
    assert frames[2].is_trailer


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\x00\x00\x00", "truncated frame header"),
        (b"\x00\x00\x00\x00\x09abc", "declares 9 bytes but 3 follow"),
        (b"\x40\x00\x00\x00\x00", "unknown frame flags"),
    ],
)
def test_malformed_frames(body: bytes, message: str) -> None:
    with pytest.raises(WireError, match=message):
        parse_frames(body)


def test_exactly_one_uncompressed_request_message() -> None:
    assert single_request_message(parse_frames(encode_frame(b"x"))) == b"x"
    assert single_request_message(parse_frames(encode_frame(b""))) == b""
    with pytest.raises(WireError, match="exactly one request message, got 2"):
        single_request_message(parse_frames(encode_frame(b"a") + encode_frame(b"b")))
    with pytest.raises(WireError, match="exactly one request message, got 0"):
        single_request_message([])
    with pytest.raises(WireError, match="compressed"):
        single_request_message(parse_frames(encode_frame(b"x", flag=0x01)))


def test_text_bodies_may_be_several_padded_chunks() -> None:
    a, b = encode_frame(b"ab"), encode_frame(b"hello world")
    assert decode_text_body(base64.b64encode(a + b)) == a + b
    # Each frame base64-encoded on its own, padding in the middle of the body.
    chunked = base64.b64encode(a) + base64.b64encode(b)
    assert b"=" in base64.b64encode(a)
    assert decode_text_body(chunked) == a + b
    assert decode_text_body(base64.b64encode(a) + b"\r\n" + base64.b64encode(b)) == a + b
    with pytest.raises(WireError, match="invalid base64 character"):
        decode_text_body(b"AAAA!AAA")
    with pytest.raises(WireError, match="truncated base64"):
        decode_text_body(b"AAAAA")


def test_grpc_message_is_percent_encoded() -> None:
    assert percent_encode("plain text: ok") == "plain text: ok"
    assert percent_encode("100% sure") == "100%25 sure"
    assert percent_encode("naïve\r\n") == "na%C3%AFve%0D%0A"


def test_binary_headers() -> None:
    assert encode_binary_header(b"\x00\x01\x02\x03") == "AAECAw"  # unpadded
    assert decode_binary_header("AAECAw") == b"\x00\x01\x02\x03"
    assert decode_binary_header("AAECAw==") == b"\x00\x01\x02\x03"
    assert decode_binary_header("-_8") == b"\xfb\xff"
    with pytest.raises(WireError):
        decode_binary_header("***")


def test_status_fields_and_trailer_frame() -> None:
    fields = list(
        status_fields(5, "no order numbered '0'", b"\x08\x05", [("x-trace", "abc"), ("grpc-internal", "x")])
    )
    assert fields == [
        ("grpc-status", "5"),
        ("grpc-message", "no order numbered '0'"),
        ("grpc-status-details-bin", "CAU"),
        ("x-trace", "abc"),
    ]
    frame = encode_trailers(fields)
    assert frame[0] == 0x80
    assert frame[5:].decode() == (
        "grpc-status:5\r\ngrpc-message:no order numbered '0'\r\ngrpc-status-details-bin:CAU\r\nx-trace:abc\r\n"
    )


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("1H", 3600.0), ("2M", 120.0), ("3S", 3.0), ("250m", 0.25), ("10u", 1e-5), ("99999999n", 0.099999999)],
)
def test_timeouts(value: str, seconds: float) -> None:
    assert parse_timeout(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["1", "S", "123456789S", "1.5S", "10s", "-1S"])
def test_bad_timeouts(value: str) -> None:
    with pytest.raises(WireError, match="grpc-timeout"):
        parse_timeout(value)


def test_no_timeout() -> None:
    assert parse_timeout(None) is None
    assert BINARY_CONTENT_TYPE == "application/grpc-web+proto"
