"""GetCall's first transcript page and ListTranscript: tokens chain, bad input is named."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from callpilot.client import AsyncCallpilot
from callpilot.client.errors import CallpilotError
from callpilot.server.app import CallpilotServer
from callpilot.server.config import Settings
from callpilot.v1 import assist_service_pb2 as pb
from callpilot.v1 import assist_service_pb2_grpc as pb_grpc
from callpilot.v1 import call_pb2, common_pb2

TURNS = 5


async def test_pages_chain_and_bad_tokens_are_refused(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {},
        port=0,
        host="127.0.0.1",
        data_dir=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        stt="null",
    )
    server = CallpilotServer(settings)
    await server.start()
    try:
        address = f"127.0.0.1:{server.port}"
        async with grpc.aio.insecure_channel(address) as channel, AsyncCallpilot(address) as cp:
            stub = pb_grpc.AssistServiceStub(channel)

            async def feed() -> AsyncIterator[pb.StreamCallRequest]:
                yield pb.StreamCallRequest(config=call_pb2.CallConfig())
                for i in range(TURNS):
                    turn = pb.TextTurn(role=common_pb2.SPEAKER_ROLE_AGENT, text=f"agent says {i}")
                    yield pb.StreamCallRequest(text_turn=turn)
                yield pb.StreamCallRequest(control=pb.CallControl(end_of_call=pb.EndOfCall()))

            call_id = ""
            async with asyncio.timeout(30):
                async for response in stub.StreamCall(feed()):
                    call_id = response.event.call_id
            expected = [f"agent says {i}" for i in range(TURNS)]

            whole = await stub.GetCall(pb.GetCallRequest(call_id=call_id))
            assert [s.text for s in whole.transcript] == expected and not whole.transcript_next_page_token

            first = await stub.GetCall(pb.GetCallRequest(call_id=call_id, transcript_page_size=2))
            texts = [s.text for s in first.transcript]
            token = first.transcript_next_page_token
            while token:
                page = await stub.ListTranscript(
                    pb.ListTranscriptRequest(call_id=call_id, page_size=2, page_token=token)
                )
                assert len(page.segments) <= 2
                texts.extend(s.text for s in page.segments)
                token = page.next_page_token
            assert texts == expected
            assert [s.text for s in (await cp.get_call(call_id)).transcript] == expected

            bad = [
                (pb.ListTranscriptRequest(call_id=call_id, page_token="not-a-token"), "page_token"),
                (pb.ListTranscriptRequest(call_id=call_id, page_size=5000), "page_size"),
            ]
            for request, field in bad:
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await stub.ListTranscript(request)
                error = CallpilotError.from_rpc_error(info.value)
                assert error.code == grpc.StatusCode.INVALID_ARGUMENT
                assert [v.field for v in error.violations] == [field]
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.ListTranscript(pb.ListTranscriptRequest(call_id="no-such-call"))
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        await server.stop()
