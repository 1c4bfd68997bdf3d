"""SIGTERM with a grace shorter than the STT backlog.

The recogniser here is backlogged on purpose: it decodes one utterance per
audio chunk and takes `DECODE_S` for each, so ten chunks are ten seconds of
work. The server is stopped (what its SIGTERM handler does) with a one
second grace once the first final is out. Every call must still end: its
stream delivers a SHUTDOWN_CUT_SHORT notice and then call_ended before the
server stops, the store has the call ENDED with the finals already produced,
and a new call during the drain gets UNAVAILABLE with ErrorInfo and RetryInfo.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
from callpilot.client.errors import CallpilotError
from callpilot.server.app import CallpilotServer
from callpilot.server.config import Settings
from callpilot.server.stt.base import (
    AudioArray,
    SpeechEvent,
    SpeechEventKind,
    STTCapabilities,
    STTEngine,
    STTStream,
)
from callpilot.v1 import assist_service_pb2 as pb
from callpilot.v1 import assist_service_pb2_grpc as pb_grpc
from callpilot.v1 import call_pb2, common_pb2, events_pb2

DECODE_S = 1.0
CHUNKS = 10
CALLS = 3
GRACE_S = 1.0
STEP_S = 60.0
AUDIO = call_pb2.AudioConfig(
    encoding=common_pb2.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=16000, channel_count=1
)


class BackloggedStream(STTStream):
    """One utterance per pushed chunk, each decoded `DECODE_S` after the previous one."""

    def __init__(self) -> None:
        self._pending: asyncio.Queue[int | None] = asyncio.Queue()
        self._chunks = 0

    async def push_audio(self, pcm: AudioArray) -> None:
        self._pending.put_nowait(self._chunks)
        self._chunks += 1

    async def flush(self) -> None:
        return None

    def end_input(self) -> None:
        self._pending.put_nowait(None)

    async def _decode(self) -> AsyncIterator[SpeechEvent]:
        while (utterance := await self._pending.get()) is not None:
            await asyncio.sleep(DECODE_S)
            yield SpeechEvent(SpeechEventKind.FINAL, utterance, f"utterance {utterance}", confidence=0.9)

    def __aiter__(self) -> AsyncIterator[SpeechEvent]:
        return self._decode()

    async def aclose(self) -> None:
        return None


class BackloggedSTT(STTEngine):
    capabilities = STTCapabilities(streaming=True, interim_results=False)

    def stream(self, *, language: str, phrase_hints: Sequence[str] = ()) -> STTStream:
        return BackloggedStream()


async def _call(stub: pb_grpc.AssistServiceStub, first_final: asyncio.Event) -> list[events_pb2.CallEvent]:
    async def feed():  # type: ignore[no-untyped-def]
        yield pb.StreamCallRequest(config=call_pb2.CallConfig(audio=AUDIO))
        for _ in range(CHUNKS):
            yield pb.StreamCallRequest(audio=pb.AudioChunk(data=b"\x00\x01" * 1600))
        await asyncio.sleep(STEP_S)  # the client keeps its side open: the server ends the call

    events = []
    async for response in stub.StreamCall(feed()):
        events.append(response.event)
        if response.event.HasField("transcript"):
            first_final.set()
    return events


async def _run(server: CallpilotServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.AssistServiceStub(channel)
        started = [asyncio.Event() for _ in range(CALLS)]
        calls = [asyncio.create_task(_call(stub, started[i])) for i in range(CALLS)]
        for event in started:
            await event.wait()
        stop = server.request_stop()
        await asyncio.sleep(0)
        try:
            await stub.CreateCall(pb.CreateCallRequest(config=call_pb2.CallConfig()))
        except grpc.aio.AioRpcError as err:
            refused = CallpilotError.from_rpc_error(err)
            assert refused.code == grpc.StatusCode.UNAVAILABLE
            assert refused.reason == "SERVER_DRAINING" and refused.retry_delay_s
        else:
            raise AssertionError("a call was created during the drain")
        results = await asyncio.gather(*calls)
        await stop
    for events in results:
        assert events[-1].HasField("call_ended"), [e.WhichOneof("payload") for e in events]
        assert events[-1].call_ended.reason == call_pb2.CALL_END_REASON_SERVER_SHUTDOWN
        notices = [e.notice.code for e in events if e.HasField("notice")]
        assert "SHUTDOWN_CUT_SHORT" in notices
        finals = [e.transcript.text for e in events if e.HasField("transcript")]
        assert finals and len(finals) < CHUNKS  # some produced and kept, the backlog dropped


def test_sigterm_with_a_grace_shorter_than_the_stt_backlog(database_url: str, tmp_path: Path) -> None:
    settings = Settings.from_env(
        {},
        port=0,
        host="127.0.0.1",
        data_dir=tmp_path,
        database_url=database_url,
        stt="null",
        shutdown_grace_s=GRACE_S,
    )

    async def main() -> None:
        server = CallpilotServer(settings, stt=BackloggedSTT())
        await server.start()
        try:
            await asyncio.wait_for(_run(server), STEP_S)
        finally:
            await server.stop()
        # A fresh server on the same database: every call ENDED (recovery had nothing to do), finals kept.
        again = CallpilotServer(settings, stt=BackloggedSTT())
        await again.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{again.port}") as channel:
                stub = pb_grpc.AssistServiceStub(channel)
                listed = await stub.ListCalls(pb.ListCallsRequest(page_size=100))
                assert len(listed.calls) == CALLS
                for call in listed.calls:
                    assert call.state == call_pb2.CALL_STATE_ENDED
                    assert call.end_reason == call_pb2.CALL_END_REASON_SERVER_SHUTDOWN
                    got = await stub.GetCall(pb.GetCallRequest(call_id=call.call_id))
                    assert got.transcript
        finally:
            await again.stop()

    asyncio.run(main())
