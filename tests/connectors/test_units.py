"""The connectors' pure parts: track alignment, AudioHook durations, media choice and signatures."""

from __future__ import annotations

import pytest
from callpilot.gateway.connectors import signature
from callpilot.gateway.connectors.alignment import MULAW_SILENCE, StereoAligner
from callpilot.gateway.connectors.audiohook import ClientError, choose_media, parse_duration

S = MULAW_SILENCE


def channels(stereo: bytes) -> tuple[bytes, bytes]:
    return stereo[0::2], stereo[1::2]


def test_both_tracks_are_interleaved_once_both_reached_a_position() -> None:
    aligner = StereoAligner()
    aligner.push(0, 0, b"\x01" * 160)
    assert aligner.pop() == b""  # the agent track has not got there yet
    aligner.push(1, 0, b"\x02" * 160)
    left, right = channels(aligner.pop())
    assert left == b"\x01" * 160 and right == b"\x02" * 160


def test_missing_packets_are_silence_not_a_time_shift() -> None:
    aligner = StereoAligner()
    aligner.push(0, 0, b"\x01" * 160)
    aligner.push(0, 480, b"\x03" * 160)  # packets at 20 and 40 ms were lost
    aligner.push(1, 0, b"\x02" * 640)
    left, right = channels(aligner.pop())
    assert left == b"\x01" * 160 + bytes([S]) * 320 + b"\x03" * 160
    assert right == b"\x02" * 640
    assert aligner.gap_samples == 320


def test_an_out_of_order_packet_takes_its_place_if_not_yet_emitted() -> None:
    aligner = StereoAligner()
    aligner.push(0, 0, b"\x01" * 160)
    aligner.push(0, 320, b"\x03" * 160)
    aligner.push(0, 160, b"\x02" * 160)  # arrives after the packet that follows it
    aligner.push(1, 0, b"\x00" * 480)
    left, _ = channels(aligner.pop())
    assert left == b"\x01" * 160 + b"\x02" * 160 + b"\x03" * 160
    assert aligner.gap_samples == 160 and aligner.late_samples == 0


def test_a_packet_whose_time_was_already_emitted_is_dropped_and_counted() -> None:
    aligner = StereoAligner()
    aligner.push(0, 0, b"\x01" * 320)
    aligner.push(1, 0, b"\x02" * 320)
    assert len(aligner.pop()) == 640
    aligner.push(0, 160, b"\x09" * 320)  # half of it is in the past
    aligner.push(1, 320, b"\x02" * 160)
    left, _ = channels(aligner.pop())
    assert left == b"\x09" * 160 and aligner.late_samples == 160


def test_a_silent_track_is_padded_after_the_skew_bound_and_an_absent_one_at_once() -> None:
    aligner = StereoAligner(max_skew=800)
    aligner.push(0, 0, b"\x01" * 1000)
    left, right = channels(aligner.pop())
    assert len(left) == 200 and right == bytes([S]) * 200  # the lead over the quiet track is capped
    absent = StereoAligner()
    absent.set_absent(1)
    absent.push(0, 0, b"\x01" * 160)
    left, right = channels(absent.pop())
    assert left == b"\x01" * 160 and right == bytes([S]) * 160


def test_flush_pads_the_shorter_track() -> None:
    aligner = StereoAligner()
    aligner.push(0, 0, b"\x01" * 160)
    aligner.push(1, 0, b"\x02" * 80)
    aligner.pop()
    left, right = channels(aligner.flush())
    assert left == b"\x01" * 80 and right == bytes([S]) * 80
    assert aligner.emitted == 160


@pytest.mark.parametrize(
    ("text", "seconds"), [("PT0S", 0.0), ("PT1.25S", 1.25), ("PT2M3S", 123.0), ("PT1H", 3600.0)]
)
def test_audiohook_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "PT", "1.5", "P1D", "PT-1S", 5])
def test_bad_audiohook_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_media_choice_prefers_pcmu_stereo_and_keeps_the_offered_order() -> None:
    mono = {"type": "audio", "format": "PCMU", "channels": ["external"], "rate": 8000}
    stereo = {"type": "audio", "format": "PCMU", "channels": ["internal", "external"], "rate": 8000}
    l16 = {"type": "audio", "format": "L16", "channels": ["external", "internal"], "rate": 16000}
    assert choose_media([l16, mono, stereo]) == stereo
    assert choose_media([l16, mono]) == mono
    assert choose_media([l16]) is None
    with pytest.raises(ClientError):
        choose_media("PCMU")


HEADERS = {
    "audiohook-organization-id": "d7934305-0972-4844-938e-9060eef73d05",
    "audiohook-session-id": "e160e428-53e2-487c-977d-96989bf5c99d",
    "audiohook-correlation-id": "30b0e395-84d3-4570-ac13-9a62d8f514c0",
    "x-api-key": "SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh",
}
SECRET = b"TXlTdXBlclNlY3JldEtleVRlbGxOby0xITJAMyM0JDU="


def signed(**changes: str) -> dict[str, str]:
    sig = signature.sign(
        HEADERS, "/api/v1/audiohook/ws", "audiohook.example.com", SECRET, nonce="n1", created=1000
    )
    return {**HEADERS, **{k.lower(): v for k, v in sig.items()}, **changes}


def test_a_request_signature_verifies_and_any_change_breaks_it() -> None:
    signature.verify(signed(), "/api/v1/audiohook/ws", "audiohook.example.com", SECRET, now=1010)
    with pytest.raises(signature.SignatureError, match="does not match"):
        signature.verify(signed(), "/api/v1/other", "audiohook.example.com", SECRET, now=1010)
    with pytest.raises(signature.SignatureError, match="does not match"):
        signature.verify(signed(), "/api/v1/audiohook/ws", "audiohook.example.com", b"other", now=1010)
    with pytest.raises(signature.SignatureError, match="keyid"):
        signature.verify(
            signed(**{"x-api-key": "another"}),
            "/api/v1/audiohook/ws",
            "audiohook.example.com",
            SECRET,
            now=1010,
        )
    with pytest.raises(signature.SignatureError, match="expired"):
        signature.verify(signed(), "/api/v1/audiohook/ws", "audiohook.example.com", SECRET, now=2000)
    with pytest.raises(signature.SignatureError, match="both"):
        signature.verify(HEADERS, "/api/v1/audiohook/ws", "audiohook.example.com", SECRET, now=1010)
