"""An oversize StreamCall message ends the call as INVALID_INPUT with details, never as CLIENT_ENDED.

gRPC refusing a message itself ends the request stream as if the client had
closed it, so the server's transport limit sits far above its own check:
the check answers RESOURCE_EXHAUSTED with an ErrorInfo and records the end
as INVALID_INPUT, keeping what was accepted before.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from callpilot.client.errors import CallpilotError
from callpilot.server.app import CallpilotServer
from callpilot.server.config import Settings
from callpilot.v1 import assist_service_pb2 as pb
from callpilot.v1 import assist_service_pb2_grpc as pb_grpc
from callpilot.v1 import call_pb2, common_pb2

AUDIO = call_pb2.AudioConfig(
    encoding=common_pb2.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=16000, channel_count=1
)
OVERSIZE = {
    "text": (
        pb.StreamCallRequest(text_turn=pb.TextTurn(role=common_pb2.SPEAKER_ROLE_AGENT, text="y" * 300_000)),
        "MESSAGE_TOO_LARGE",
    ),
    "audio": (pb.StreamCallRequest(audio=pb.AudioChunk(data=b"\x00" * 200_000)), "AUDIO_CHUNK_TOO_LARGE"),
}


@pytest.mark.parametrize("kind", sorted(OVERSIZE))
def test_an_oversize_message_is_invalid_input(kind: str, database_url: str, tmp_path: Path) -> None:
    oversize, reason = OVERSIZE[kind]
    settings = Settings.from_env(
        {}, port=0, host="127.0.0.1", data_dir=tmp_path, database_url=database_url, stt="null"
    )

    async def main() -> None:
        server = CallpilotServer(settings)
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                stub = pb_grpc.AssistServiceStub(channel)
                accepted = asyncio.Event()

                async def feed():  # type: ignore[no-untyped-def]
                    yield pb.StreamCallRequest(config=call_pb2.CallConfig(audio=AUDIO))
                    turn = pb.TextTurn(role=common_pb2.SPEAKER_ROLE_AGENT, text="accepted before")
                    yield pb.StreamCallRequest(text_turn=turn)
                    await accepted.wait()
                    yield oversize
                    await asyncio.sleep(30)

                call_id = ""
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    async for response in stub.StreamCall(feed()):
                        call_id = response.event.call_id
                        if response.event.HasField("transcript"):
                            accepted.set()
                error = CallpilotError.from_rpc_error(info.value)
                assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED and error.reason == reason
                for _ in range(200):
                    got = await stub.GetCall(pb.GetCallRequest(call_id=call_id))
                    if got.call.state == call_pb2.CALL_STATE_ENDED:
                        break
                    await asyncio.sleep(0.05)
                assert got.call.end_reason == call_pb2.CALL_END_REASON_INVALID_INPUT
                assert [s.text for s in got.transcript] == ["accepted before"]
        finally:
            await server.stop()

    asyncio.run(asyncio.wait_for(main(), 60))
