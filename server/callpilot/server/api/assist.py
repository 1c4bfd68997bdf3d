"""AssistService: StreamCall, WatchCall and the call RPCs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc
from callpilot.server import metrics
from callpilot.server.api.status import abort, abort_internal, streaming, unary
from callpilot.server.bus import InProcessBus, Lagged, Subscription
from callpilot.server.errors import CallpilotError, FailedPrecondition, InvalidArgument, NotFound, Violation
from callpilot.server.manager import SessionManager, validate_call_id
from callpilot.server.session import CallSession, validate_decision
from callpilot.v1 import assist_service_pb2 as pb
from callpilot.v1 import assist_service_pb2_grpc as pb_grpc
from callpilot.v1 import call_pb2, events_pb2

if TYPE_CHECKING:
    from callpilot.server.store import Store

log = logging.getLogger("callpilot.api")

MAX_AUDIO_CHUNK = 64 * 1024
Ctx = grpc.aio.ServicerContext[Any, Any]


def _observe_fanout(event: events_pb2.CallEvent) -> None:
    metrics.EMIT_TO_WATCHER.observe(max(0.0, time.time() - event.time.ToNanoseconds() / 1e9))


class AssistServicer(pb_grpc.AssistServiceServicer):
    def __init__(self, manager: SessionManager, store: Store, bus: InProcessBus) -> None:
        self._manager = manager
        self._store = store
        self._bus = bus

    # ------------------------------------------------------------- StreamCall

    async def StreamCall(
        self, request_iterator: AsyncIterator[pb.StreamCallRequest], context: Ctx
    ) -> AsyncIterator[pb.StreamCallResponse]:
        requests = request_iterator.__aiter__()
        try:
            try:
                first = await requests.__anext__()
            except StopAsyncIteration:
                raise InvalidArgument(
                    Violation(
                        "config", "the stream was empty: send a config as the first message", "REQUIRED"
                    )
                ) from None
            kind = first.WhichOneof("request")
            if kind != "config":
                raise InvalidArgument(
                    Violation(
                        "config",
                        f"the first message must be a config, got {kind or 'an empty message'}; "
                        "send the call's configuration before any audio, text or control",
                        "CONFIG_FIRST",
                    )
                )
            session = await self._manager.open(first.config)
        except CallpilotError as err:
            await abort(context, err)

        sub = self._bus.subscribe(session.call_id)
        reader: asyncio.Task[CallpilotError | None] | None = None
        last = 0
        try:
            await session.start()
            reader = asyncio.create_task(self._read(requests, session))
            while True:
                try:
                    event = await sub.next()
                except Lagged:
                    sub.close()
                    sub = self._bus.subscribe(session.call_id)
                    metrics.WATCHER_LAGS.inc()
                    for stored in await self._store.read_events(session.call_id, last + 1):
                        last = stored.sequence
                        yield pb.StreamCallResponse(event=stored)
                        if stored.HasField("call_ended"):
                            break
                    continue
                if event is None:
                    break
                if event.sequence <= last:
                    continue
                last = event.sequence
                _observe_fanout(event)
                yield pb.StreamCallResponse(event=event)
                if event.HasField("call_ended"):
                    break
        except Exception as exc:
            if not isinstance(exc, grpc.aio.AbortError):
                session.request_end(call_pb2.CALL_END_REASON_INTERNAL_ERROR, "internal error")
                await abort_internal(context, exc)
            raise
        finally:
            sub.close()
            # A client that went away ends its call; the end runs in its own
            # task so the finals already accepted are still flushed and stored.
            session.request_end(call_pb2.CALL_END_REASON_STREAM_ABORTED, "the client's stream broke off")
            if reader is not None and not reader.done():
                reader.cancel()
        error = None
        if reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                error = await reader
        if error is not None:
            await abort(context, error)

    async def _read(
        self, requests: AsyncIterator[pb.StreamCallRequest], session: CallSession
    ) -> CallpilotError | None:
        """Feed the session from the request stream; returns the input error that ended it, if any."""
        try:
            async for request in requests:
                received = time.time()
                kind = request.WhichOneof("request")
                if kind == "audio":
                    if len(request.audio.data) > MAX_AUDIO_CHUNK:
                        raise _ChunkTooLarge(len(request.audio.data))
                    await session.push_audio(request.audio.data, received)
                elif kind == "text_turn":
                    await session.add_text_turn(request.text_turn.role, request.text_turn.text, received)
                elif kind == "control":
                    await self._control(session, request.control)
                    if request.control.WhichOneof("control") == "end_of_call":
                        return None
                elif kind == "config":
                    raise InvalidArgument(
                        Violation(
                            "config", "config may only be sent once, as the first message", "CONFIG_REPEATED"
                        )
                    )
                else:
                    raise InvalidArgument(
                        Violation(
                            "request", "empty message: set one of audio, text_turn or control", "REQUIRED"
                        )
                    )
            session.request_end(call_pb2.CALL_END_REASON_CLIENT_ENDED, "the client closed its stream")
            return None
        except CallpilotError as err:
            log.info("call %s: rejecting input: %s", session.call_id, err.message)
            session.request_end(call_pb2.CALL_END_REASON_INVALID_INPUT, err.message)
            return err
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The transport failed (client gone, message over the size limit):
            # keep what was accepted and end the call.
            log.info("call %s: request stream failed: %r", session.call_id, exc)
            session.request_end(call_pb2.CALL_END_REASON_STREAM_ABORTED, "the client's request stream failed")
            return None

    async def _control(self, session: CallSession, control: pb.CallControl) -> None:
        which = control.WhichOneof("control")
        if which == "suggest_now":
            session.suggest_now(control.suggest_now.query)
        elif which == "end_of_call":
            session.request_end(call_pb2.CALL_END_REASON_CLIENT_ENDED, control.end_of_call.detail)
        elif which == "feedback":
            _validate_feedback(control.feedback, "control.feedback")
            await session.record_feedback(control.feedback)
        elif which == "tool_decision":
            validate_decision(control.tool_decision, "control.tool_decision")
            try:
                await session.decide_tool(control.tool_decision)
            except (NotFound, FailedPrecondition) as err:
                # A stale or repeated decision must not end the call: say so instead.
                await session.notice(events_pb2.NOTICE_LEVEL_WARNING, err.reason, err.message)
        else:
            raise InvalidArgument(
                Violation("control", "empty control: set suggest_now, end_of_call or feedback", "REQUIRED")
            )

    # -------------------------------------------------------------- WatchCall

    @streaming
    async def WatchCall(
        self, request: pb.WatchCallRequest, context: Ctx
    ) -> AsyncIterator[pb.WatchCallResponse]:
        validate_call_id(request.call_id)
        if request.from_sequence < 0:
            raise InvalidArgument(Violation("from_sequence", "must be 0 or more", "OUT_OF_RANGE"))
        call_id = request.call_id
        if await self._store.get_call(call_id) is None:
            raise NotFound(
                f"call {call_id!r} does not exist", reason="CALL_NOT_FOUND", metadata={"call_id": call_id}
            )
        last = max(request.from_sequence, 1) - 1
        while True:
            # Subscribe before reading the store: anything published after the
            # read is then queued, and duplicates are skipped by sequence.
            sub: Subscription = self._bus.subscribe(call_id)
            try:
                for event in await self._store.read_events(call_id, last + 1):
                    last = event.sequence
                    yield pb.WatchCallResponse(event=event)
                    if event.HasField("call_ended"):
                        return
                call = await self._store.get_call(call_id)
                if (
                    call is not None
                    and call.state == call_pb2.CALL_STATE_ENDED
                    and call_id not in self._manager.sessions
                ):
                    return
                try:
                    async for event in sub:
                        if event.sequence <= last:
                            continue
                        last = event.sequence
                        _observe_fanout(event)
                        yield pb.WatchCallResponse(event=event)
                        if event.HasField("call_ended"):
                            return
                except Lagged:
                    metrics.WATCHER_LAGS.inc()
                    continue
                # The bus finished the call; anything durable left is in the store.
                for event in await self._store.read_events(call_id, last + 1):
                    last = event.sequence
                    yield pb.WatchCallResponse(event=event)
                return
            finally:
                sub.close()

    # ------------------------------------------------------------------ unary

    @unary
    async def CreateCall(self, request: pb.CreateCallRequest, context: Ctx) -> pb.CreateCallResponse:
        call = await self._manager.create_call(request.config)
        return pb.CreateCallResponse(call=call)

    @unary
    async def GetCall(self, request: pb.GetCallRequest, context: Ctx) -> pb.GetCallResponse:
        validate_call_id(request.call_id)
        call = await self._store.get_call(request.call_id)
        if call is None:
            raise NotFound(
                f"call {request.call_id!r} does not exist",
                reason="CALL_NOT_FOUND",
                metadata={"call_id": request.call_id},
            )
        response = pb.GetCallResponse(
            call=call,
            transcript=await self._store.get_transcript(call.call_id),
            tool_calls=await self._store.get_tool_calls(call.call_id),
            suggestions=await self._store.get_suggestions(call.call_id),
        )
        context_update = await self._store.latest_context(call.call_id)
        if context_update is not None:
            response.context.CopyFrom(context_update)
        return response

    @unary
    async def ListCalls(self, request: pb.ListCallsRequest, context: Ctx) -> pb.ListCallsResponse:
        if not 0 <= request.page_size <= 100:
            raise InvalidArgument(Violation("page_size", "must be 1 to 100 (0 means 20)", "OUT_OF_RANGE"))
        try:
            calls, token = await self._store.list_calls(
                page_size=request.page_size or 20, page_token=request.page_token, state=request.state
            )
        except ValueError:
            raise InvalidArgument(
                Violation(
                    "page_token",
                    "not a token returned by ListCalls; start again with an empty token",
                    "INVALID",
                )
            ) from None
        return pb.ListCallsResponse(calls=calls, next_page_token=token)

    @unary
    async def EndCall(self, request: pb.EndCallRequest, context: Ctx) -> pb.EndCallResponse:
        call = await self._manager.end_call(request.call_id, request.detail)
        return pb.EndCallResponse(call=call)

    @unary
    async def SubmitFeedback(
        self, request: pb.SubmitFeedbackRequest, context: Ctx
    ) -> pb.SubmitFeedbackResponse:
        validate_call_id(request.call_id)
        has_feedback, has_decision = request.HasField("feedback"), request.HasField("tool_decision")
        if has_feedback == has_decision:
            raise InvalidArgument(
                Violation("feedback", "set exactly one of feedback and tool_decision", "ONE_OF_REQUIRED")
            )
        if has_decision:
            validate_decision(request.tool_decision)
            live = self._manager.sessions.get(request.call_id)
            if live is None:
                if await self._store.get_call(request.call_id) is None:
                    raise NotFound(
                        f"call {request.call_id!r} does not exist",
                        reason="CALL_NOT_FOUND",
                        metadata={"call_id": request.call_id},
                    )
                raise FailedPrecondition(
                    f"call {request.call_id!r} is not live; proposals still waiting were cancelled when it ended",
                    reason="CALL_NOT_LIVE",
                    metadata={"call_id": request.call_id},
                )
            return pb.SubmitFeedbackResponse(tool_call=await live.decide_tool(request.tool_decision))
        _validate_feedback(request.feedback, "feedback")
        session = self._manager.sessions.get(request.call_id)
        if session is not None:
            suggestion = await session.record_feedback(request.feedback)
        else:
            suggestion = await self._store.record_feedback(request.call_id, request.feedback)
        return pb.SubmitFeedbackResponse(suggestion=suggestion)


class _ChunkTooLarge(CallpilotError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "AUDIO_CHUNK_TOO_LARGE"

    def __init__(self, size: int) -> None:
        super().__init__(
            f"audio.data is {size} bytes; send chunks of at most {MAX_AUDIO_CHUNK} bytes (20-100 ms of audio is best)",
            metadata={"field": "audio.data", "limit": str(MAX_AUDIO_CHUNK), "size": str(size)},
            violations=[
                Violation("audio.data", f"{size} bytes is over the {MAX_AUDIO_CHUNK}-byte limit", "TOO_LARGE")
            ],
        )


def _validate_feedback(feedback: pb.SuggestionFeedback, prefix: str) -> None:
    violations: list[Violation] = []
    if not feedback.suggestion_id:
        violations.append(Violation(f"{prefix}.suggestion_id", "suggestion_id is required", "REQUIRED"))
    if feedback.kind == pb.FEEDBACK_KIND_UNSPECIFIED:
        violations.append(Violation(f"{prefix}.kind", "set kind to USED, DISMISSED or RATED", "REQUIRED"))
    if feedback.kind == pb.FEEDBACK_KIND_RATED and not 1 <= feedback.rating <= 5:
        violations.append(Violation(f"{prefix}.rating", "a rating is 1 to 5", "OUT_OF_RANGE"))
    if len(feedback.comment) > 2000:
        violations.append(Violation(f"{prefix}.comment", "at most 2000 characters", "TOO_LONG"))
    if violations:
        raise InvalidArgument(violations)
