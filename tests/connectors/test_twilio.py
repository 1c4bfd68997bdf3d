"""Twilio Media Streams against a real gateway and server: the protocol, signatures, malformed input."""

from __future__ import annotations

import base64
import contextlib
import re
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest
from callpilot.client import AsyncCallpilot
from callpilot.v1 import call_pb2, common_pb2
from connectors.calls import ended_call, find_call, log_has
from connectors.conftest import API_KEY, TWILIO_TOKEN, gateway_process, tone
from connectors.twilio_client import MediaStream, signature
from support import GatewayProcess, ServerProcess

CUSTOM = {"callpilot_key": API_KEY, "caller": "+15550100101"}


async def test_both_tracks_become_one_stereo_call_with_roles_and_the_customer_hint(
    gateway: GatewayProcess, null_server: ServerProcess
) -> None:
    stream = MediaStream(gateway.url, TWILIO_TOKEN)
    try:
        await stream.open()
        await stream.start(CUSTOM)
        await stream.play(tone(1.0, 440), tone(1.0, 880))
        await stream.dtmf("5")
        await stream.mark("greeting-played")
        await stream.stop()
        code, _ = await stream.closed()
        assert code == 1000
    finally:
        await stream.close()
    call = await find_call(null_server.address, "twilio_call_sid", stream.call_sid)
    assert call is not None
    stored = await ended_call(null_server.address, call.call_id)
    config = stored.call.config
    assert config.audio.encoding == common_pb2.AUDIO_ENCODING_MULAW
    assert config.audio.sample_rate_hertz == 8000 and config.audio.channel_count == 2
    assert list(config.audio.channel_roles) == [
        common_pb2.SPEAKER_ROLE_CUSTOMER,
        common_pb2.SPEAKER_ROLE_AGENT,
    ]
    assert config.labels["connector"] == "twilio" and config.labels["twilio_stream_sid"] == stream.stream_sid
    assert config.customer_hint.phone == "+15550100101" and stored.call.customer_id == "C-1001"
    assert stored.call.end_reason == call_pb2.CALL_END_REASON_CLIENT_ENDED
    # DTMF is logged without its digit.
    assert log_has(gateway, f"{stream.stream_sid}: a DTMF digit was pressed")


@pytest.mark.parametrize("forged", ["wrong-token", None])
async def test_a_bad_or_missing_signature_is_refused_before_the_upgrade(
    gateway: GatewayProcess, forged: str | None
) -> None:
    stream = MediaStream(gateway.url, TWILIO_TOKEN)
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await stream.open(sign_with=forged, signed=forged is not None)
        assert err.value.status == 403
    finally:
        await stream.close()
    why = "invalid" if forged else "missing"
    assert log_has(gateway, f"Media Streams websocket refused: {why} X-Twilio-Signature")


async def _violation(
    gateway: GatewayProcess, null_server: ServerProcess, steps: str
) -> tuple[int | None, str]:
    stream = MediaStream(gateway.url, TWILIO_TOKEN)
    try:
        await stream.open()
        if steps == "no-credential":
            await stream.start({"caller": "+15550100101"})
        elif steps == "media-before-start":
            await stream.media("inbound", 0, tone(0.02))
        elif steps == "not-json":
            await stream.send_raw("this is not json")
        elif steps == "stop-without-start":
            await stream.stop()
        elif steps == "bad-format":
            await stream.start(CUSTOM, encoding="audio/x-l16", sampleRate=16000)
        result = await stream.closed()
    finally:
        await stream.close()
    # None of these made a call.
    assert await find_call(null_server.address, "twilio_call_sid", stream.call_sid, timeout=0) is None
    return result


@pytest.mark.parametrize(
    ("steps", "code", "log_line"),
    [
        ("no-credential", 1008, "closing: no callpilot_key or callpilot_token in customParameters"),
        ("media-before-start", 1008, "closing: 'media' before 'start'"),
        ("not-json", 1007, "closing: a message is not JSON"),
        ("stop-without-start", 1000, "'stop' without 'start'; no call was made"),
        ("bad-format", 1003, "closing: unsupported mediaFormat"),
    ],
)
async def test_malformed_streams_are_closed_with_a_code_and_a_log_line(
    gateway: GatewayProcess, null_server: ServerProcess, steps: str, code: int, log_line: str
) -> None:
    close_code, _ = await _violation(gateway, null_server, steps)
    assert close_code == code
    assert log_has(gateway, log_line)


async def test_garbage_base64_and_an_out_of_order_chunk_do_not_break_the_call(
    gateway: GatewayProcess, null_server: ServerProcess
) -> None:
    stream = MediaStream(gateway.url, TWILIO_TOKEN)
    frame = tone(0.02)
    try:
        await stream.open()
        await stream.start(CUSTOM)
        await stream.media("inbound", 0, frame, chunk=1)
        await stream.media("inbound", 40, frame, chunk=3)  # chunk 2 comes after chunk 3
        await stream.media("inbound", 20, frame, chunk=2)
        await stream.media("inbound", 60, "%%% not base64 %%%", chunk=4)
        await stream.media("inbound", 80, frame, chunk=5)
        await stream.media("outbound", 0, frame, chunk=1)
        await stream.stop()
        code, _ = await stream.closed()
    finally:
        await stream.close()
    assert code == 1000
    assert log_has(gateway, f"{stream.stream_sid}: dropped a malformed media frame (1 so far)")
    assert log_has(gateway, f"{stream.stream_sid}: chunk 2 of track 0 arrived after chunk 3")
    call = await find_call(null_server.address, "twilio_call_sid", stream.call_sid)
    assert call is not None
    stored = await ended_call(null_server.address, call.call_id)
    assert stored.call.state == call_pb2.CALL_STATE_ENDED


async def test_twiml_webhook_is_signed_and_starts_a_both_tracks_stream(gateway: GatewayProcess) -> None:
    query = urlencode({"key": API_KEY, "dial": "+15550199999"})
    url = f"{gateway.url}/connectors/twilio/twiml?{query}"
    form = {"CallSid": "CA" + "0" * 32, "From": "+15550100101", "To": "+15550199999", "Direction": "inbound"}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            url, data=form, headers={"X-Twilio-Signature": signature(TWILIO_TOKEN, url, form)}
        ) as r:
            assert r.status == 200 and r.content_type == "application/xml"
            body = await r.text()
        async with http.post(
            url, data=form, headers={"X-Twilio-Signature": signature("forged", url, form)}
        ) as r:
            assert r.status == 403
        bare = f"{gateway.url}/connectors/twilio/twiml"
        async with http.post(
            bare, data=form, headers={"X-Twilio-Signature": signature(TWILIO_TOKEN, bare, form)}
        ) as r:
            assert r.status == 400 and "key" in await r.text()
        # The preferred form: the key as the basic-auth password of the webhook URL (kept out of access logs).
        dial = f"{bare}?dial=sip:agent@pbx.example.com"
        sig = signature(TWILIO_TOKEN, dial, form)
        auth = "Basic " + base64.b64encode(f"twilio:{API_KEY}".encode()).decode()
        async with http.post(
            dial, data=form, headers={"X-Twilio-Signature": sig, "Authorization": auth}
        ) as r:
            assert r.status == 200
            basic_body = await r.text()
    assert f'<Parameter name="callpilot_key" value="{API_KEY}"/>' in basic_body
    assert "<Dial><Sip>sip:agent@pbx.example.com</Sip></Dial>" in basic_body
    ws_url = gateway.url.replace("http://", "ws://") + "/connectors/twilio"
    assert f'<Stream url="{ws_url}" track="both_tracks">' in body
    assert f'<Parameter name="callpilot_key" value="{API_KEY}"/>' in body
    assert '<Parameter name="caller" value="+15550100101"/>' in body
    assert re.search(r"<Dial><Number>\+15550199999</Number></Dial>", body)


async def test_gateway_shutdown_closes_streams_going_away_and_ends_their_calls_cleanly(
    null_server: ServerProcess, artifacts: Path
) -> None:
    own = gateway_process(null_server, artifacts / "gateway-connectors-shutdown.log").start()
    stream = MediaStream(own.url, TWILIO_TOKEN)
    try:
        await stream.open()
        await stream.start(CUSTOM)
        await stream.play(tone(0.4), tone(0.4))
        call = await find_call(null_server.address, "twilio_call_sid", stream.call_sid)
        assert call is not None
        own.terminate()
        code, _ = await stream.closed()
        assert code == 1001
        assert own.wait(30) == 0
    finally:
        await stream.close()
        own.stop()
    stored = await ended_call(null_server.address, call.call_id)
    assert stored.call.end_reason == call_pb2.CALL_END_REASON_CLIENT_ENDED


async def test_a_call_ended_on_the_server_closes_its_stream(
    gateway: GatewayProcess, null_server: ServerProcess
) -> None:
    stream = MediaStream(gateway.url, TWILIO_TOKEN)
    try:
        await stream.open()
        await stream.start(CUSTOM)
        await stream.play(tone(0.2), tone(0.2))
        call = await find_call(null_server.address, "twilio_call_sid", stream.call_sid)
        assert call is not None
        async with AsyncCallpilot(null_server.address) as cp:
            await cp.end_call(call.call_id, "ended by a supervisor")
        await ended_call(null_server.address, call.call_id)
        with contextlib.suppress(ConnectionError):
            await stream.play(tone(1.0), tone(1.0))  # Twilio keeps streaming until told otherwise
        code, _ = await stream.closed()
    finally:
        await stream.close()
    assert code == 1000
    assert log_has(gateway, f"{stream.stream_sid}: closing: the call ended on the server")
