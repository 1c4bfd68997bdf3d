"""The typed async Python client for Callpilot.

    async with AsyncCallpilot("127.0.0.1:50051") as cp:
        async with cp.stream_call(WavFile("call.wav")) as call:
            async for event in call:
                ...

Every RPC error surfaces as `CallpilotError` with the server's field
violations unpacked. This package needs only grpcio and protobuf: it installs
without the server's heavy dependencies.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import grpc
from callpilot.client.audio import AudioSource, AudioSourceError, IteratorAudio, RawAudio, WavFile
from callpilot.client.connection import (
    channel_credentials,
    metadata_interceptors,
    resolve_api_key,
    split_target,
)
from callpilot.client.errors import CallpilotError, FieldViolation
from callpilot.v1 import (
    assist_service_pb2,
    assist_service_pb2_grpc,
    call_pb2,
    common_pb2,
    directory_pb2,
    directory_service_pb2,
    directory_service_pb2_grpc,
    events_pb2,
)

__all__ = [
    "AsyncCallpilot",
    "AudioSource",
    "AudioSourceError",
    "CallStream",
    "CallpilotError",
    "FieldViolation",
    "IteratorAudio",
    "RawAudio",
    "WavFile",
]

DEFAULT_TARGET = "127.0.0.1:50051"
T = TypeVar("T")

# Client keepalive mirrors the server's policy (it allows pings every 10 s):
# a ping every 20 s keeps NATs and proxies from dropping a quiet call.
CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    # A target that resolves to several server instances (`dns:///servers:50051`)
    # gets each RPC, hence each call, on the next instance; a single address
    # behaves as before.
    ("grpc.lb_policy_name", "round_robin"),
]

# Requests waiting to be sent on a live call. Audio is paced by its source and
# by gRPC flow control; when the server is slower than the source the writer
# waits (backpressure), nothing is dropped.
REQUEST_QUEUE_SIZE = 64


def _decision(
    tool_call_id: str,
    kind: events_pb2.ToolDecisionKind.ValueType,
    arguments: Mapping[str, Any] | None,
    comment: str,
) -> events_pb2.ToolDecision:
    decision = events_pb2.ToolDecision(tool_call_id=tool_call_id, kind=kind, comment=comment)
    if arguments is not None:
        decision.arguments.update(dict(arguments))
    return decision


async def _rpc(coro: Awaitable[T]) -> T:
    try:
        return await coro
    except grpc.aio.AioRpcError as err:
        raise CallpilotError.from_rpc_error(err) from None


class CallStream:
    """A live `StreamCall`: iterate its events; send text turns and controls."""

    def __init__(
        self,
        stub: assist_service_pb2_grpc.AssistServiceAsyncStub,
        config: call_pb2.CallConfig,
        audio: AudioSource | None,
        *,
        end_when_audio_ends: bool,
        timeout: float | None,
    ) -> None:
        self._requests: asyncio.Queue[assist_service_pb2.StreamCallRequest | None] = asyncio.Queue(
            REQUEST_QUEUE_SIZE
        )
        self._audio = audio
        self._end_when_audio_ends = end_when_audio_ends
        self._pump: asyncio.Task[None] | None = None
        self._closed = False
        self.call_id = config.call_id
        self._requests.put_nowait(assist_service_pb2.StreamCallRequest(config=config))
        self._call = stub.StreamCall(self._request_iter(), timeout=timeout)

    async def _request_iter(self) -> AsyncIterator[assist_service_pb2.StreamCallRequest]:
        while True:
            request = await self._requests.get()
            if request is None:
                return
            yield request

    async def _pump_audio(self) -> None:
        assert self._audio is not None
        async for chunk in self._audio.chunks():
            if self._closed:
                return
            await self._requests.put(
                assist_service_pb2.StreamCallRequest(audio=assist_service_pb2.AudioChunk(data=chunk))
            )
        if self._end_when_audio_ends:
            await self.close()

    def _start(self) -> None:
        if self._pump is None and self._audio is not None:
            self._pump = asyncio.create_task(self._pump_audio())

    async def __aenter__(self) -> CallStream:
        self._start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[events_pb2.CallEvent]:
        self._start()
        return self._events()

    async def _events(self) -> AsyncIterator[events_pb2.CallEvent]:
        try:
            async for response in self._call:
                event = response.event
                if not self.call_id:
                    self.call_id = event.call_id
                yield event
        except grpc.aio.AioRpcError as err:
            raise CallpilotError.from_rpc_error(err) from None
        finally:
            if self._pump is not None and not self._pump.done():
                self._pump.cancel()

    async def _send(self, request: assist_service_pb2.StreamCallRequest) -> None:
        if self._closed:
            raise RuntimeError("the call's request stream is closed")
        await self._requests.put(request)

    async def send_text(self, role: common_pb2.SpeakerRole.ValueType, text: str) -> None:
        """Send a turn the platform already transcribed."""
        await self._send(
            assist_service_pb2.StreamCallRequest(text_turn=assist_service_pb2.TextTurn(role=role, text=text))
        )

    async def suggest_now(self, query: str = "") -> None:
        control = assist_service_pb2.CallControl(suggest_now=assist_service_pb2.SuggestNow(query=query))
        await self._send(assist_service_pb2.StreamCallRequest(control=control))

    async def feedback(
        self,
        suggestion_id: str,
        kind: assist_service_pb2.FeedbackKind.ValueType,
        rating: int = 0,
        comment: str = "",
    ) -> None:
        fb = assist_service_pb2.SuggestionFeedback(
            suggestion_id=suggestion_id, kind=kind, rating=rating, comment=comment
        )
        await self._send(
            assist_service_pb2.StreamCallRequest(control=assist_service_pb2.CallControl(feedback=fb))
        )

    async def decide_tool(
        self,
        tool_call_id: str,
        kind: events_pb2.ToolDecisionKind.ValueType,
        *,
        arguments: Mapping[str, Any] | None = None,
        comment: str = "",
    ) -> None:
        """Confirm, revise (with `arguments`) or cancel a proposed write tool.

        The outcome arrives as a `tool_call` event with the same id.
        """
        decision = _decision(tool_call_id, kind, arguments, comment)
        control = assist_service_pb2.CallControl(tool_decision=decision)
        await self._send(assist_service_pb2.StreamCallRequest(control=control))

    async def end(self, detail: str = "") -> None:
        """End the call; the event stream then finishes with `call_ended`."""
        control = assist_service_pb2.CallControl(end_of_call=assist_service_pb2.EndOfCall(detail=detail))
        await self._send(assist_service_pb2.StreamCallRequest(control=control))
        await self.close()

    async def close(self) -> None:
        """Close the request stream (the server then ends the call)."""
        if not self._closed:
            self._closed = True
            await self._requests.put(None)

    async def aclose(self) -> None:
        """Stop everything now (cancels the RPC if it is still running)."""
        self._closed = True
        if self._pump is not None and not self._pump.done():
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump
        if not self._call.done():
            self._call.cancel()


class AsyncCallpilot:
    """A connection to a Callpilot server."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        api_key: str | None = None,
        tls: bool | None = None,
        ca_file: str | Path | None = None,
        cert_file: str | Path | None = None,
        key_file: str | Path | None = None,
        channel: grpc.aio.Channel | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Connect to `target` (``host:port``, ``http://…`` or ``https://…``).

        `api_key` (default: ``$CALLPILOT_API_KEY``) is sent on every RPC; TLS is
        used for ``https://`` targets, with `tls=True`, or when `credentials`
        are given, verified against `ca_file` (default: the system's roots).
        """
        address, scheme_tls = split_target(target)
        key = resolve_api_key(api_key)
        extra = list(metadata)
        if key:
            extra.append(("authorization", f"Bearer {key}"))
        if channel is None:
            interceptors = metadata_interceptors(extra)
            use_tls = credentials is not None or bool(tls) or (tls is None and bool(scheme_tls))
            if use_tls:
                creds = credentials or channel_credentials(
                    ca_file=ca_file, cert_file=cert_file, key_file=key_file
                )
                channel = grpc.aio.secure_channel(
                    address, creds, options=CHANNEL_OPTIONS, interceptors=interceptors
                )
            else:
                channel = grpc.aio.insecure_channel(
                    address, options=CHANNEL_OPTIONS, interceptors=interceptors
                )
        self.target = target
        self.channel = channel
        self.assist = assist_service_pb2_grpc.AssistServiceStub(channel)
        self.directory = directory_service_pb2_grpc.DirectoryServiceStub(channel)
        self._metadata = tuple(extra)

    async def __aenter__(self) -> AsyncCallpilot:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self.channel.close(None)

    async def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until the channel connects; raises CallpilotError(UNAVAILABLE) on timeout."""
        try:
            await asyncio.wait_for(self.channel.channel_ready(), timeout)
        except TimeoutError:
            raise CallpilotError(
                grpc.StatusCode.UNAVAILABLE,
                f"cannot reach a Callpilot server at {self.target} within {timeout:g}s",
            ) from None

    # ---------------------------------------------------------------- calls

    def stream_call(
        self,
        audio: AudioSource | None = None,
        config: call_pb2.CallConfig | None = None,
        *,
        end_when_audio_ends: bool = True,
        timeout: float | None = None,
    ) -> CallStream:
        """Start a call. The audio source's format fills `config.audio`.

        With `end_when_audio_ends` the call ends when the source is exhausted;
        otherwise it stays open for text turns and controls until `end()`.
        """
        cfg = call_pb2.CallConfig()
        if config is not None:
            cfg.CopyFrom(config)
        if audio is not None:
            audio_cfg = call_pb2.AudioConfig()
            audio_cfg.CopyFrom(audio.config)
            if cfg.HasField("audio"):
                audio_cfg.MergeFrom(cfg.audio)
            cfg.audio.CopyFrom(audio_cfg)
        return CallStream(self.assist, cfg, audio, end_when_audio_ends=end_when_audio_ends, timeout=timeout)

    async def watch_call(
        self, call_id: str, *, from_sequence: int = 1, resume: bool = True, max_retries: int = 5
    ) -> AsyncIterator[events_pb2.CallEvent]:
        """Every event of a call from durable sequence `from_sequence`; ends when the call ends.

        With `resume`, a dropped stream is re-opened from the last durable
        sequence delivered plus one, so the caller sees every durable event
        exactly once, in order. Ephemeral events (interim transcripts,
        suggestion deltas) carry the sequence of the durable event before
        them; they are live only, so one sent while the stream was down is
        not seen.
        """
        last_durable = max(from_sequence, 1) - 1
        retries = 0
        while True:
            stream = self.assist.WatchCall(
                assist_service_pb2.WatchCallRequest(call_id=call_id, from_sequence=last_durable + 1)
            )
            try:
                async for response in stream:
                    retries = 0
                    event = response.event
                    if event.durable:
                        if event.sequence <= last_durable:
                            continue  # already delivered before the stream was re-opened
                        last_durable = event.sequence
                    yield event
                return
            except grpc.aio.AioRpcError as err:
                if not resume or err.code() != grpc.StatusCode.UNAVAILABLE or retries >= max_retries:
                    raise CallpilotError.from_rpc_error(err) from None
                retries += 1
                await asyncio.sleep(min(0.2 * 2**retries, 5.0))

    async def create_call(self, config: call_pb2.CallConfig | None = None) -> call_pb2.Call:
        response = await _rpc(self.assist.CreateCall(assist_service_pb2.CreateCallRequest(config=config)))
        return response.call

    async def get_call(
        self, call_id: str, *, whole_transcript: bool = True
    ) -> assist_service_pb2.GetCallResponse:
        """The call; with `whole_transcript` (the default) every transcript page is read and joined.

        The server returns the first page of a long transcript with a
        `transcript_next_page_token`; this reads the rest with `ListTranscript`
        and returns the response with the token cleared. With
        `whole_transcript=False` the first page and its token come back as sent.
        """
        response: assist_service_pb2.GetCallResponse = await _rpc(
            self.assist.GetCall(assist_service_pb2.GetCallRequest(call_id=call_id))
        )
        if whole_transcript:
            token = response.transcript_next_page_token
            while token:
                page = await self.list_transcript(call_id, page_token=token)
                response.transcript.extend(page.segments)
                token = page.next_page_token
            response.transcript_next_page_token = ""
        return response

    async def list_transcript(
        self, call_id: str, *, page_size: int = 0, page_token: str = ""
    ) -> assist_service_pb2.ListTranscriptResponse:
        """One page of a call's final transcript (`page_token` from GetCall or the previous page)."""
        request = assist_service_pb2.ListTranscriptRequest(
            call_id=call_id, page_size=page_size, page_token=page_token
        )
        return await _rpc(self.assist.ListTranscript(request))

    async def list_calls(
        self,
        *,
        page_size: int = 20,
        page_token: str = "",
        state: call_pb2.CallState.ValueType = call_pb2.CALL_STATE_UNSPECIFIED,
    ) -> assist_service_pb2.ListCallsResponse:
        request = assist_service_pb2.ListCallsRequest(page_size=page_size, page_token=page_token, state=state)
        return await _rpc(self.assist.ListCalls(request))

    async def iter_calls(self, *, page_size: int = 50) -> AsyncIterator[call_pb2.Call]:
        token = ""
        while True:
            page = await self.list_calls(page_size=page_size, page_token=token)
            for call in page.calls:
                yield call
            token = page.next_page_token
            if not token:
                return

    async def end_call(self, call_id: str, detail: str = "") -> call_pb2.Call:
        response = await _rpc(
            self.assist.EndCall(assist_service_pb2.EndCallRequest(call_id=call_id, detail=detail))
        )
        return response.call

    async def submit_feedback(
        self,
        call_id: str,
        suggestion_id: str,
        kind: assist_service_pb2.FeedbackKind.ValueType,
        *,
        rating: int = 0,
        comment: str = "",
    ) -> assist_service_pb2.Suggestion:
        feedback = assist_service_pb2.SuggestionFeedback(
            suggestion_id=suggestion_id, kind=kind, rating=rating, comment=comment
        )
        request = assist_service_pb2.SubmitFeedbackRequest(call_id=call_id, feedback=feedback)
        response = await _rpc(self.assist.SubmitFeedback(request))
        return response.suggestion

    async def save_wrap_up(
        self,
        call_id: str,
        *,
        summary: str = "",
        disposition: assist_service_pb2.Disposition.ValueType = assist_service_pb2.DISPOSITION_UNSPECIFIED,
        follow_ups: Sequence[str] = (),
        notes: str = "",
    ) -> assist_service_pb2.WrapUp:
        """Save the agent's wrap-up of a live or ended call, replacing any saved before.

        Returns it as saved (with update_time and updated_by); `get_call`
        returns it too, as `wrap_up`.
        """
        wrap_up = assist_service_pb2.WrapUp(
            summary=summary, disposition=disposition, follow_ups=list(follow_ups), notes=notes
        )
        request = assist_service_pb2.SaveWrapUpRequest(call_id=call_id, wrap_up=wrap_up)
        response = await _rpc(self.assist.SaveWrapUp(request))
        return response.wrap_up

    async def decide_tool(
        self,
        call_id: str,
        tool_call_id: str,
        kind: events_pb2.ToolDecisionKind.ValueType,
        *,
        arguments: Mapping[str, Any] | None = None,
        comment: str = "",
    ) -> events_pb2.ToolCall:
        """Confirm, revise or cancel a proposed write tool of a live call; returns the outcome."""
        request = assist_service_pb2.SubmitFeedbackRequest(
            call_id=call_id, tool_decision=_decision(tool_call_id, kind, arguments, comment)
        )
        response = await _rpc(self.assist.SubmitFeedback(request))
        return response.tool_call

    # ------------------------------------------------------------ directory

    async def search_customers(self, query: str, page_size: int = 10) -> list[directory_pb2.Customer]:
        request = directory_service_pb2.SearchCustomersRequest(query=query, page_size=page_size)
        return list((await _rpc(self.directory.SearchCustomers(request))).customers)

    async def get_customer(self, customer_id: str) -> directory_service_pb2.GetCustomerResponse:
        return await _rpc(
            self.directory.GetCustomer(directory_service_pb2.GetCustomerRequest(customer_id=customer_id))
        )

    async def get_order(self, order_number: str) -> directory_pb2.Order:
        response = await _rpc(
            self.directory.GetOrder(directory_service_pb2.GetOrderRequest(order_number=order_number))
        )
        return response.order

    async def get_policy(self, policy_type: directory_pb2.PolicyType.ValueType) -> directory_pb2.Policy:
        response = await _rpc(
            self.directory.GetPolicy(directory_service_pb2.GetPolicyRequest(type=policy_type))
        )
        return response.policy

    async def search_knowledge(self, query: str, page_size: int = 5) -> list[directory_pb2.KnowledgeHit]:
        request = directory_service_pb2.SearchKnowledgeRequest(query=query, page_size=page_size)
        return list((await _rpc(self.directory.SearchKnowledge(request))).hits)
