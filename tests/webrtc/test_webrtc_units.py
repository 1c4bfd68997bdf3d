"""The gateway's WebRTC parts on their own: mixer, converter, relay track, TURN, validation."""

from __future__ import annotations

import base64
import fractions
import hashlib
import hmac

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection
from callpilot.gateway.config import GatewaySettings
from callpilot.gateway.webrtc import loopback
from callpilot.gateway.webrtc.audio import (
    AGENT,
    CUSTOMER,
    LegConverter,
    PartyTrack,
    StereoMixer,
    is_digital_silence,
)
from callpilot.gateway.webrtc.errors import ApiError
from callpilot.gateway.webrtc.turn import browser_ice_servers, turn_credential
from callpilot.gateway.webrtc.validation import (
    parse_candidate,
    parse_offer,
    parse_start,
    validate_offer_sdp,
)
from webrtc.peer import WavTrack


def pcm(values: list[int]) -> bytes:
    return np.array(values, dtype=np.int16).tobytes()


async def drain(mixer: StereoMixer) -> np.ndarray:
    """Everything the mixer produced so far (after close) as (frames, 2)."""
    chunks = [chunk async for chunk in mixer.chunks()]
    return np.frombuffer(b"".join(chunks), dtype=np.int16).reshape(-1, 2)


# ------------------------------------------------------------------ mixer


async def test_mixer_pads_the_absent_party_with_silence() -> None:
    mixer = StereoMixer()
    mixer.push(CUSTOMER, pcm([1, 2, 3]))
    mixer.close()
    out = await drain(mixer)
    assert out.tolist() == [[1, 0], [2, 0], [3, 0]]


async def test_mixer_aligns_two_live_legs_sample_for_sample() -> None:
    mixer = StereoMixer()
    mixer.push(CUSTOMER, pcm([1, 2]))  # agent not live yet: customer flows alone
    mixer.push(AGENT, pcm([10, 20, 30]))  # agent live now: customer is the one behind
    mixer.push(CUSTOMER, pcm([3, 4, 5]))
    mixer.close()
    out = await drain(mixer)
    assert out[:, 0].tolist() == [1, 2, 3, 4, 5]
    # The agent joined after the customer's first two samples went out with silence beside them.
    assert out[:, 1].tolist() == [0, 0, 10, 20, 30]


async def test_mixer_waits_for_a_live_leg_but_not_beyond_the_skew_bound() -> None:
    mixer = StereoMixer()
    mixer.push(AGENT, pcm([7]))  # the agent alone: out at once, the customer's channel silent
    assert mixer.frames_out == 1
    mixer.push(CUSTOMER, pcm([1]))  # both live now: the customer waits for the agent's next samples
    assert mixer.frames_out == 1
    skew = int(16_000 * 0.2)  # MAX_SKEW_S at 16 kHz
    mixer.push(CUSTOMER, np.ones(skew + 100, dtype=np.int16).tobytes())
    # The agent stalled: what runs more than the skew bound ahead goes out, padded.
    assert mixer.frames_out == 1 + 101
    mixer.leg_ended(AGENT)  # the agent is gone: nothing left to wait for
    assert mixer.frames_out == 1 + 1 + skew + 100
    mixer.close()
    out = await drain(mixer)
    assert out[0].tolist() == [0, 7] and out[1].tolist() == [1, 0]
    assert not out[1:, 1].any() and (out[1:, 0] == 1).all()


async def test_mixer_close_flushes_and_ends_even_when_the_queue_overflowed() -> None:
    mixer = StereoMixer(queue_s=0.1)  # 5 chunks
    for _ in range(20):
        mixer.push(CUSTOMER, pcm([5] * 320))
    mixer.close()
    chunks = [c async for c in mixer.chunks()]
    assert mixer.dropped_chunks > 0
    assert 0 < len(chunks) <= 5  # the oldest were dropped, the end marker was not
    mixer.push(CUSTOMER, pcm([1]))  # after close: ignored
    assert mixer.closed


# ------------------------------------------------------------- converter


def stereo_frame(samples: np.ndarray, pts: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(
        np.repeat(samples, 2).reshape(1, -1).astype(np.int16), format="s16", layout="stereo"
    )
    frame.sample_rate = 48_000
    frame.pts = pts
    frame.time_base = fractions.Fraction(1, 48_000)
    return frame


def test_converter_turns_48k_stereo_into_16k_mono_without_losing_level() -> None:
    t = np.arange(48_000) / 48_000
    tone = (np.sin(2 * np.pi * 440 * t) * 20_000).astype(np.int16)
    converter = LegConverter()
    out = b"".join(converter.convert(stereo_frame(tone[i : i + 960], i)) for i in range(0, 48_000, 960))
    out += converter.flush()
    mono = np.frombuffer(out, dtype=np.int16)
    assert abs(len(mono) - 16_000) <= 16
    assert 19_000 < np.abs(mono[200:-200]).max() <= 20_100  # both channels averaged, not summed
    assert is_digital_silence(pcm([0, 3, -4])) and not is_digital_silence(pcm([0, 50]))


# ------------------------------------------------------------ party track


async def test_party_track_relays_fed_frames_as_opus_and_fills_gaps_with_silence() -> None:
    decoder = av.CodecContext.create("libopus", "r")
    decoder.sample_rate = 48_000
    decoder.layout = "stereo"

    def decoded_peak(packet: av.Packet) -> int:
        return int(max((np.abs(f.to_ndarray()).max() for f in decoder.decode(packet)), default=0))

    track = PartyTrack()
    first = await track.recv()  # nobody to relay yet: encoded silence
    assert isinstance(first, av.Packet) and first.time_base == fractions.Fraction(1, 48_000)
    assert decoded_peak(first) < 50
    t = np.arange(960 * 8) / 48_000
    tone = (np.sin(2 * np.pi * 440 * t) * 10_000).astype(np.int16)
    for i in range(8):
        track.feed(stereo_frame(tone[i * 960 : (i + 1) * 960], 123_456 + i * 960))
    assert len(track._frames) == 6  # bounded: the oldest two were dropped
    packets = [await track.recv() for _ in range(6)]
    assert track.frames_relayed == 6
    # One 20 ms Opus packet per frame, on the track's own continuous timeline.
    pts = [first.pts] + [p.pts for p in packets]
    assert pts == [pts[0] + 960 * i for i in range(7)]
    assert max(decoded_peak(p) for p in packets) > 5_000
    # Other packet times are cut into 20 ms frames.
    track.feed(stereo_frame(tone[: 960 * 3], 0))
    assert len(track._frames) == 3
    track.stop()


# ------------------------------------------------------------------- TURN


def test_turn_credentials_follow_coturns_rest_scheme() -> None:
    cred = turn_credential("s3cret", 3600, user="alice", now=1_700_000_000)
    assert cred.username == "1700003600:alice" and cred.expires_at == 1_700_003_600
    expected = base64.b64encode(hmac.new(b"s3cret", b"1700003600:alice", hashlib.sha1).digest()).decode()
    assert cred.credential == expected


def test_ice_servers_without_turn_have_no_credentials() -> None:
    assert browser_ice_servers(GatewaySettings()) == {"iceServers": []}
    body = browser_ice_servers(GatewaySettings(stun_urls=("stun:stun.example.com:3478",)))
    assert body == {"iceServers": [{"urls": ["stun:stun.example.com:3478"]}]}


# ------------------------------------------------------------- validation


async def _browser_like_offer() -> str:
    pc = RTCPeerConnection()
    pc.addTrack(WavTrack(None))
    await pc.setLocalDescription(await pc.createOffer())
    sdp = str(pc.localDescription.sdp)
    await pc.close()
    return sdp


async def test_offer_validation_names_what_is_wrong() -> None:
    sdp = await _browser_like_offer()
    validate_offer_sdp(sdp)
    cases = {
        "garbage": "must start with",
        sdp.replace("a=fingerprint:", "a=x-fingerprint:"): "DTLS fingerprint",
        sdp.replace("a=ice-ufrag:", "a=x-ice-ufrag:"): "ICE credentials",
        sdp.replace("opus/48000/2", "speex/16000"): "Opus",
        sdp.replace("m=audio", "m=video"): "only audio",
        sdp.replace("a=sendrecv", "a=recvonly"): "microphone",
        sdp + "m=audio 9 UDP/TLS/RTP/SAVPF 96\r\n": "exactly one audio",
        "v=0\r\nm=audio x\r\n": "not usable",
        "v=0\r\n" + "a=x\r\n" * 20_000: "larger than",
    }
    for bad, words in cases.items():
        with pytest.raises(ApiError) as info:
            validate_offer_sdp(bad)
        assert info.value.status == 400 and info.value.field == "sdp"
        assert words in info.value.message, (words, info.value.message)


def test_request_bodies_are_checked_field_by_field() -> None:
    good = {"call_id": "call-1", "role": "agent", "type": "offer"}
    failures = [
        ({**good, "sdp": "v=0", "role": "supervisor"}, "role"),
        ({**good, "sdp": "v=0", "call_id": "../etc"}, "call_id"),
        ({**good, "sdp": "v=0", "type": "answer"}, "type"),
        ({**good, "sdp": "v=0", "callId": "x"}, "callId"),
        ({**good}, "sdp"),
        ({**good, "sdp": 5}, "sdp"),
    ]
    for body, field in failures:
        with pytest.raises(ApiError) as info:
            parse_offer(body)
        assert info.value.status == 400 and info.value.field == field, (body, info.value.body())
    assert parse_start({}) == {}
    assert parse_start({"customer_hint": {"phone": " +1 555 0100 "}}) == {"phone": "+1 555 0100"}
    with pytest.raises(ApiError):
        parse_start({"customer_hint": {"name": "Maria"}})
    assert parse_candidate({"type": "end-of-candidates"}).candidate is None
    cand = parse_candidate(
        {"candidate": "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host", "sdpMLineIndex": 0}
    )
    assert cand.candidate == "1 1 udp 2130706431 127.0.0.1 5000 typ host"
    with pytest.raises(ApiError):
        parse_candidate({"candidate": "candidate:nonsense", "sdpMid": "0"})


def test_loopback_mode_keeps_only_loopback_udp_candidates() -> None:
    sdp = (
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
        "a=candidate:1 1 udp 2122260223 192.0.2.2 50000 typ host\r\n"
        "a=candidate:2 1 udp 2122194687 127.0.0.1 50001 typ host\r\n"
        "a=candidate:3 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active\r\n"
        "a=candidate:4 1 udp 2122260223 abcd.local 50002 typ host\r\n"
    )
    kept = loopback.keep_loopback_candidates(sdp)
    assert "127.0.0.1 50001" in kept and "192.0.2.2" not in kept
    assert "tcptype" not in kept and ".local" not in kept
    assert loopback.is_enabled()  # the conftest enabled it for this process
