"""Genesys AudioHook v2 against a real gateway and server: every protocol message and error path."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from callpilot.client import AsyncCallpilot
from callpilot.v1 import call_pb2, common_pb2
from connectors.audiohook_client import STEREO, AudioHookClient
from connectors.calls import ended_call, find_call, log_has
from connectors.conftest import API_KEY, AUDIOHOOK_SECRET, tone
from support import GatewayProcess, ServerProcess

CUSTOMER, AGENT = common_pb2.SPEAKER_ROLE_CUSTOMER, common_pb2.SPEAKER_ROLE_AGENT


async def connected(gateway: GatewayProcess, *, signed: bool = True) -> AudioHookClient:
    client = AudioHookClient(gateway.url)
    await client.connect(client.headers(API_KEY, AUDIOHOOK_SECRET if signed else None))
    return client


def server_message(message: dict[str, Any], client: AudioHookClient, type_: str) -> dict[str, Any]:
    """Checks every server message's envelope: version, session id, seq order and clientseq."""
    assert message["type"] == type_, message
    assert message["id"] == client.id and message["clientseq"] == client.seq, message
    params: dict[str, Any] = message["parameters"]
    return params


async def test_a_session_opens_streams_stereo_and_handles_every_client_message(
    gateway: GatewayProcess, null_server: ServerProcess
) -> None:
    client = await connected(gateway)
    try:
        opened = server_message(await client.open(), client, "opened")
        assert opened == {"startPaused": False, "media": [STEREO]}
        external, internal = tone(1.0, 440), tone(1.0, 880)
        stream = asyncio.create_task(client.play(external, internal))
        # Pings while audio flows: each answered by a pong before the next ping is sent.
        for _ in range(3):
            await asyncio.sleep(0.25)
            await client.send("ping", {"rtt": "PT0.012S"})
            assert server_message(await client.receive(), client, "pong") == {}
        await stream
        await client.send("paused", {})
        await client.send("resumed", {"start": client.position, "discarded": "PT0.5S"})
        await client.send("discarded", {"start": client.position, "discarded": "PT0.2S"})
        await client.send("dtmf", {"digit": "7"})
        await client.send("update", {"language": "en-GB"})
        assert server_message(await client.receive(), client, "updated") == {}
        await client.send("error", {"code": 429, "message": "rate limited", "retryAfter": "PT1S"})
        await client.play(tone(0.2), tone(0.2))
        assert server_message(await client.close_session(), client, "closed") == {}
    finally:
        await client.close()
    call = await find_call(null_server.address, "genesys_conversation_id", client.conversation_id)
    assert call is not None
    stored = await ended_call(null_server.address, call.call_id)
    audio = stored.call.config.audio
    assert audio.encoding == common_pb2.AUDIO_ENCODING_MULAW and audio.channel_count == 2
    assert list(audio.channel_roles) == [CUSTOMER, AGENT]
    assert (
        stored.call.customer_id == "C-1001" and stored.call.config.labels["audiohook_session_id"] == client.id
    )
    assert stored.call.end_reason == call_pb2.CALL_END_REASON_CLIENT_ENDED
    prefix = f"audiohook session {client.id}: "
    assert log_has(gateway, prefix + "a DTMF digit was pressed")
    assert log_has(gateway, prefix + "client error 429: rate limited")
    assert log_has(gateway, prefix + "paused at")


async def test_the_offered_channel_order_decides_the_roles(
    gateway: GatewayProcess, null_server: ServerProcess
) -> None:
    swapped = {**STEREO, "channels": ["internal", "external"]}
    mono_l16 = {"type": "audio", "format": "L16", "channels": ["external"], "rate": 16000}
    client = await connected(gateway, signed=False)
    try:
        opened = server_message(await client.open([mono_l16, swapped]), client, "opened")
        assert opened["media"] == [swapped]
        await client.play(tone(0.3), tone(0.3))
        server_message(await client.close_session(), client, "closed")
    finally:
        await client.close()
    call = await find_call(null_server.address, "genesys_conversation_id", client.conversation_id)
    assert call is not None and list(call.config.audio.channel_roles) == [AGENT, CUSTOMER]


async def test_a_connection_probe_is_opened_without_media(gateway: GatewayProcess) -> None:
    client = await connected(gateway)
    client.conversation_id = "00000000-0000-0000-0000-000000000000"
    try:
        assert server_message(await client.open([]), client, "opened") == {"startPaused": False, "media": []}
        server_message(await client.close_session(), client, "closed")
    finally:
        await client.close()


@pytest.mark.parametrize("case", ["no-key", "bad-signature"])
async def test_unauthenticated_connections_are_refused_with_401(gateway: GatewayProcess, case: str) -> None:
    client = AudioHookClient(gateway.url)
    headers = client.headers(
        None if case == "no-key" else API_KEY, b"not the secret" if case != "no-key" else None
    )
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await client.connect(headers)
        assert err.value.status == 401
    finally:
        await client.close()
    assert log_has(gateway, "no X-API-KEY" if case == "no-key" else "the signature does not match")


async def _break(client: AudioHookClient, case: str) -> None:
    if case in ("bad-seq", "not-json", "unknown-type", "bad-serverseq", "wrong-id", "audio-frame"):
        await client.open()
    if case == "bad-seq":
        await client.send("ping", {}, seq=client.seq + 5)
    elif case == "not-json":
        await client.send_raw("{not json")
    elif case == "unknown-type":
        await client.send("rewind", {})
    elif case == "bad-serverseq":
        await client.send("ping", {}, serverseq=99)
    elif case == "wrong-id":
        await client.send("ping", {}, id="11111111-1111-1111-1111-111111111111")
    elif case == "audio-before-open":
        await client.audio(tone(0.02) * 2)
    elif case == "audio-frame":
        await client.audio(b"\xff" * 321)
    elif case == "no-usable-media":
        await client.send(
            "open",
            {
                "organizationId": client.organization_id,
                "conversationId": client.conversation_id,
                "participant": {"id": client.id, "ani": "", "aniName": "", "dnis": ""},
                "media": [{"type": "audio", "format": "L16", "channels": ["external"], "rate": 16000}],
            },
        )
    elif case == "ping-before-open-params":
        await client.send("open", {"conversationId": "not-a-uuid", "media": [STEREO]})


@pytest.mark.parametrize(
    ("case", "info"),
    [
        ("bad-seq", "invalid seq"),
        ("not-json", "not valid JSON"),
        ("unknown-type", "'rewind' is not a supported client message"),
        ("bad-serverseq", "invalid serverseq"),
        ("wrong-id", "session identifier mismatch"),
        ("audio-before-open", "audio before the session was opened"),
        ("audio-frame", "is not whole samples"),
        ("no-usable-media", "no media offer of PCMU"),
        ("ping-before-open-params", "'conversationId' must be a UUID"),
    ],
)
async def test_protocol_errors_get_disconnect_error_then_close_gets_closed(
    gateway: GatewayProcess, case: str, info: str
) -> None:
    client = await connected(gateway)
    try:
        await _break(client, case)
        message = await client.receive()
        assert message["type"] == "disconnect", message
        assert message["parameters"]["reason"] == "error" and info in message["parameters"]["info"], message
        # After the disconnect the client closes the session, as Genesys does.
        assert (await client.close_session())["type"] == "closed"
    finally:
        await client.close()
    assert log_has(gateway, f"audiohook session {client.id}: disconnect (error): Client Error: ")
    assert log_has(gateway, info)


async def test_disconnect_messages_carry_json_as_documented(gateway: GatewayProcess) -> None:
    """The server's messages are plain JSON objects with exactly the documented keys."""
    client = await connected(gateway)
    try:
        opened = await client.open()
        assert set(opened) == {"version", "id", "type", "seq", "clientseq", "parameters"}
        await client.send_raw(json.dumps({"version": "2", "type": "ping"}))
        message = await client.receive()
        assert message["type"] == "disconnect" and message["parameters"]["reason"] == "error"
    finally:
        await client.close()


async def test_a_call_ended_on_the_server_gets_disconnect_completed(
    gateway: GatewayProcess, null_server: ServerProcess
) -> None:
    client = await connected(gateway)
    try:
        await client.open()
        call = await find_call(null_server.address, "genesys_conversation_id", client.conversation_id)
        assert call is not None
        async with AsyncCallpilot(null_server.address) as cp:
            await cp.end_call(call.call_id, "ended by a supervisor")
        await ended_call(null_server.address, call.call_id)
        await client.play(tone(0.2), tone(0.2))
        message = await client.receive()
        assert message["type"] == "disconnect" and message["parameters"]["reason"] == "completed", message
        assert server_message(await client.close_session(), client, "closed") == {}
    finally:
        await client.close()
