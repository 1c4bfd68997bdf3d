"""Bad input ends the stream with a status and details; accepted data is kept."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
import pytest
from callpilot.client import AsyncCallpilot, CallpilotError
from callpilot.v1 import assist_service_pb2 as pb
from callpilot.v1 import call_pb2, common_pb2
from support import ServerProcess

LINEAR16_16K = call_pb2.AudioConfig(
    encoding=common_pb2.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=16000, channel_count=1
)


async def _requests(
    items: Sequence[pb.StreamCallRequest], pause: float = 0.0
) -> AsyncIterator[pb.StreamCallRequest]:
    for item in items:
        yield item
        if pause:
            await asyncio.sleep(pause)


async def _run(
    server: ServerProcess, items: Sequence[pb.StreamCallRequest]
) -> tuple[list[pb.StreamCallResponse], CallpilotError]:
    async with AsyncCallpilot(server.address) as cp:
        responses: list[pb.StreamCallResponse] = []
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for response in cp.assist.StreamCall(_requests(items)):
                responses.append(response)
        return responses, CallpilotError.from_rpc_error(info.value)


def _config(**kwargs: object) -> pb.StreamCallRequest:
    return pb.StreamCallRequest(config=call_pb2.CallConfig(**kwargs))  # type: ignore[arg-type]


def _audio(data: bytes) -> pb.StreamCallRequest:
    return pb.StreamCallRequest(audio=pb.AudioChunk(data=data))


async def test_audio_before_config(server: ServerProcess) -> None:
    responses, err = await _run(server, [_audio(b"\0\0" * 160)])
    assert responses == []
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in err.violations] == ["config"]
    assert "first message must be a config" in err.message


async def test_empty_stream(server: ServerProcess) -> None:
    _responses, err = await _run(server, [])
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.violations[0].field == "config"


@pytest.mark.parametrize(
    ("audio", "field"),
    [
        (
            call_pb2.AudioConfig(encoding=common_pb2.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=4000),
            "config.audio.sample_rate_hertz",
        ),
        (
            call_pb2.AudioConfig(encoding=common_pb2.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=96000),
            "config.audio.sample_rate_hertz",
        ),
        (call_pb2.AudioConfig(encoding=7, sample_rate_hertz=16000), "config.audio.encoding"),  # type: ignore[arg-type]
        (call_pb2.AudioConfig(sample_rate_hertz=16000), "config.audio.encoding"),
        (
            call_pb2.AudioConfig(
                encoding=common_pb2.AUDIO_ENCODING_MULAW, sample_rate_hertz=8000, channel_count=3
            ),
            "config.audio.channel_count",
        ),
        (
            call_pb2.AudioConfig(
                encoding=common_pb2.AUDIO_ENCODING_MULAW, sample_rate_hertz=8000, channel_count=2
            ),
            "config.audio.channel_roles",
        ),
    ],
)
async def test_unsupported_audio_config(
    server: ServerProcess, audio: call_pb2.AudioConfig, field: str
) -> None:
    _responses, err = await _run(server, [_config(audio=audio)])
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in [v.field for v in err.violations], err


async def test_unknown_and_malformed_call_ids(server: ServerProcess) -> None:
    _r, err = await _run(server, [_config(call_id="no-such-call")])
    assert err.code == grpc.StatusCode.NOT_FOUND and err.reason == "CALL_NOT_FOUND"
    assert err.metadata["call_id"] == "no-such-call"
    _r, err = await _run(server, [_config(call_id="bad id!")])
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.violations[0].field == "config.call_id"
    async with AsyncCallpilot(server.address) as cp:
        with pytest.raises(CallpilotError) as info:
            await cp.get_call("missing")
        assert info.value.code == grpc.StatusCode.NOT_FOUND
        with pytest.raises(CallpilotError) as info:
            _ = [e async for e in cp.watch_call("missing")]
        assert info.value.code == grpc.StatusCode.NOT_FOUND


async def _finals_then(
    server: ServerProcess, wav: Path, bad: pb.StreamCallRequest
) -> tuple[list[pb.StreamCallResponse], CallpilotError]:
    """Stream real speech, then something bad; return what came back."""
    with wave.open(str(wav), "rb") as w:
        pcm = w.readframes(w.getnframes())
    chunk = 3200  # 100 ms
    items = (
        [_config(audio=LINEAR16_16K)]
        + [_audio(pcm[i : i + chunk]) for i in range(0, len(pcm), chunk)]
        + [bad]
    )
    async with AsyncCallpilot(server.address) as cp:
        responses: list[pb.StreamCallResponse] = []
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for response in cp.assist.StreamCall(_requests(items)):
                responses.append(response)
        return responses, CallpilotError.from_rpc_error(info.value)


async def _assert_kept(server: ServerProcess, responses: list[pb.StreamCallResponse]) -> None:
    events = [r.event for r in responses]
    assert events[-1].HasField("call_ended")
    assert events[-1].call_ended.reason == call_pb2.CALL_END_REASON_INVALID_INPUT
    finals = [e.transcript.text for e in events if e.HasField("transcript") and e.transcript.is_final]
    assert finals, "the speech accepted before the bad message was transcribed"
    async with AsyncCallpilot(server.address) as cp:
        stored = await cp.get_call(events[0].call_id)
    assert [t.text for t in stored.transcript] == finals
    assert stored.call.state == call_pb2.CALL_STATE_ENDED


async def test_odd_chunk_keeps_finals(server: ServerProcess, support_call_wav: Path) -> None:
    responses, err = await _finals_then(server, support_call_wav, _audio(b"\0\0\0"))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.violations and err.violations[0].field == "audio.data"
    await _assert_kept(server, responses)


async def test_second_config_rejected(server: ServerProcess, support_call_wav: Path) -> None:
    responses, err = await _finals_then(server, support_call_wav, _config(audio=LINEAR16_16K))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.violations[0].field == "config"
    await _assert_kept(server, responses)


async def test_oversized_chunk(server: ServerProcess) -> None:
    responses, err = await _run(server, [_config(audio=LINEAR16_16K), _audio(b"\0\0" * 40000)])
    assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert err.violations[0].field == "audio.data"
    assert responses[-1].event.HasField("call_ended")


async def test_message_over_transport_limit(server: ServerProcess) -> None:
    """A message far over the limit is refused by gRPC itself; the server keeps serving."""
    async with AsyncCallpilot(server.address) as cp:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in cp.assist.StreamCall(
                _requests([_config(audio=LINEAR16_16K), _audio(b"\0" * 1_000_000)])
            ):
                pass
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert (await cp.get_order("78901")).order_number == "78901"


async def test_bad_unary_arguments(server: ServerProcess) -> None:
    async with AsyncCallpilot(server.address) as cp:
        with pytest.raises(CallpilotError) as info:
            await cp.submit_feedback("whatever", "", 0)
        fields = {v.field for v in info.value.violations}
        assert {"feedback.suggestion_id", "feedback.kind"} <= fields
        with pytest.raises(CallpilotError) as info:
            await cp.list_calls(page_token="garbage!")
        assert info.value.violations[0].field == "page_token"
        with pytest.raises(CallpilotError) as info:
            await cp.get_policy(0)
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(CallpilotError) as info:
            await cp.get_order("00000")
        assert info.value.code == grpc.StatusCode.NOT_FOUND and info.value.reason == "ORDER_NOT_FOUND"
