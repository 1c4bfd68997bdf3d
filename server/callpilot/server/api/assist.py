"""AssistService: StreamCall, WatchCall and the call RPCs.

Both streaming RPCs deliver events through one `replay_then_follow`
(api.replay), so the no-gaps, no-duplicates guarantee is written once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
from callpilot.server.admission import Gate, admit
from callpilot.server.api.replay import replay_then_follow
from callpilot.server.api.status import abort, abort_internal, streaming, unary
from callpilot.server.api.validation import (
    call_not_found,
    validate_call_id,
    validate_config,
    validate_decision,
    validate_feedback,
    validate_first_request,
    validate_from_sequence,
    validate_page_size,
    validate_wrap_up,
)
from callpilot.server.auth.errors import PermissionDenied
from callpilot.server.auth.join_tokens import JoinTokens
from callpilot.server.auth.principal import current_principal
from callpilot.server.bus import InProcessBus
from callpilot.server.errors import CallpilotError, FailedPrecondition, InvalidArgument, NotFound, Violation
from callpilot.server.manager import SessionManager
from callpilot.server.session import CallSession
from callpilot.server.store.protocols import CallLog
from callpilot.server.tenancy import Tenants
from callpilot.v1 import assist_service_pb2 as pb
from callpilot.v1 import assist_service_pb2_grpc as pb_grpc
from callpilot.v1 import call_pb2, events_pb2

log = logging.getLogger("callpilot.api")

MAX_AUDIO_CHUNK = 64 * 1024
# Any StreamCall message: an audio chunk or a text turn with room for framing.
MAX_REQUEST_BYTES = 80 * 1024
# Transcript pages (GetCall, ListTranscript): a count and a size bound, so any
# page fits far inside gRPC's 4 MiB message limit (a segment is at most ~40 KB).
TRANSCRIPT_PAGE_DEFAULT = 500
TRANSCRIPT_PAGE_MAX = 1000
TRANSCRIPT_PAGE_BYTES = 1024 * 1024
_TOKEN_PREFIX = "tx1:"
Ctx = grpc.aio.ServicerContext[Any, Any]


class AssistServicer(pb_grpc.AssistServiceServicer):
    """Every handler works inside the caller's tenant: `_manager`, `_store` and
    `_bus` are that tenant's (see tenancy.py), so nothing here can reach
    another tenant's calls."""

    def __init__(
        self,
        tenants: Tenants,
        join_tokens: JoinTokens | None = None,
        *,
        max_watchers_per_call: int = 64,
        max_watchers: int = 2000,
    ) -> None:
        self._tenants = tenants
        self._join = join_tokens
        # WatchCall caps (CALLPILOT_MAX_WATCHERS_PER_CALL, CALLPILOT_MAX_WATCHERS): a gate per
        # (tenant, call) and one for the server, taken before the first await.
        self._max_watchers_per_call = max_watchers_per_call
        self._watchers = Gate(max_watchers, what="this server", setting="CALLPILOT_MAX_WATCHERS")
        self._call_watchers: dict[tuple[str, str], Gate] = {}

    @property
    def _manager(self) -> SessionManager:
        return self._tenants.current().manager

    @property
    def _store(self) -> CallLog:
        return self._tenants.current().store

    @property
    def _bus(self) -> InProcessBus:
        return self._tenants.current().bus

    async def _is_over(self, call_id: str) -> bool:
        """True when the call has ended and no session will publish for it again."""
        if self._manager.is_live(call_id):
            return False
        call = await self._store.get_call(call_id)
        return call is None or call.state == call_pb2.CALL_STATE_ENDED

    # ------------------------------------------------------------- StreamCall

    async def StreamCall(
        self, request_iterator: AsyncIterator[pb.StreamCallRequest], context: Ctx
    ) -> AsyncIterator[pb.StreamCallResponse]:
        requests = request_iterator.__aiter__()
        try:
            first: pb.StreamCallRequest | None = None
            with contextlib.suppress(StopAsyncIteration):
                first = await requests.__anext__()
            config = _joinable(validate_first_request(first))
            session = await self._manager.open(config)
        except CallpilotError as err:
            await abort(context, err)

        # Subscribe before the call starts: its first event is then queued.
        sub = self._bus.subscribe(session.call_id)
        reader: asyncio.Task[CallpilotError | None] | None = None
        try:
            after = session.events.last_sequence
            await session.start()
            reader = asyncio.create_task(self._read(requests, session, context))
            events = replay_then_follow(
                self._store,
                self._bus,
                session.call_id,
                after=after,
                is_over=lambda: self._is_over(session.call_id),
                subscription=sub,
            )
            async for event in events:
                yield pb.StreamCallResponse(event=event)
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
        self, requests: AsyncIterator[pb.StreamCallRequest], session: CallSession, context: Ctx
    ) -> CallpilotError | None:
        """Feed the session from the request stream; returns the input error that ended it, if any."""
        try:
            async for request in requests:
                received = time.time()
                kind = request.WhichOneof("request")
                if kind != "audio" and (size := request.ByteSize()) > MAX_REQUEST_BYTES:
                    raise _MessageTooLarge(size)
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
            if await _cancelled_soon(context):
                # A cancelled RPC also ends the request stream: that is not a clean close.
                session.request_end(
                    call_pb2.CALL_END_REASON_STREAM_ABORTED, "the client cancelled its stream"
                )
            else:
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
            validate_feedback(control.feedback, "control.feedback")
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
        validate_from_sequence(request.from_sequence)
        call_id = request.call_id
        key = (self._tenants.current().tenant_id, call_id)
        per_call = self._call_watchers.get(key)
        if per_call is None:
            per_call = self._call_watchers[key] = Gate(
                self._max_watchers_per_call,
                what=f"call {call_id!r}",
                setting="CALLPILOT_MAX_WATCHERS_PER_CALL",
            )
        slot = admit(self._watchers, per_call)  # before any await: the caps cannot be overshot
        try:
            if await self._store.get_call(call_id) is None:
                raise call_not_found(call_id)
            events = replay_then_follow(
                self._store,
                self._bus,
                call_id,
                after=max(request.from_sequence, 1) - 1,
                is_over=lambda: self._is_over(call_id),
            )
            async for event in events:
                yield pb.WatchCallResponse(event=event)
        finally:
            slot.release()
            if per_call.in_use == 0 and self._call_watchers.get(key) is per_call:
                del self._call_watchers[key]

    # ------------------------------------------------------------------ unary

    @unary
    async def CreateCall(self, request: pb.CreateCallRequest, context: Ctx) -> pb.CreateCallResponse:
        validate_config(request.config)
        call = await self._manager.create_call(request.config)
        response = pb.CreateCallResponse(call=call)
        if self._join is not None:
            token, expires = await self._join.mint(self._tenants.current().tenant_id, call.call_id)
            response.join_token = token
            response.join_token_expire_time.FromDatetime(expires)
        return response

    @unary
    async def GetCall(self, request: pb.GetCallRequest, context: Ctx) -> pb.GetCallResponse:
        validate_call_id(request.call_id)
        limit = _transcript_page_size(request.transcript_page_size, "transcript_page_size")
        call = await self._store.get_call(request.call_id)
        if call is None:
            raise call_not_found(request.call_id)
        segments, token = await self._transcript_page(call.call_id, 0, limit)
        response = pb.GetCallResponse(
            call=call,
            transcript=segments,
            transcript_next_page_token=token,
            tool_calls=await self._store.get_tool_calls(call.call_id),
            suggestions=await self._store.get_suggestions(call.call_id),
        )
        context_update = await self._store.latest_context(call.call_id)
        if context_update is not None:
            response.context.CopyFrom(context_update)
        wrap_up = await self._store.get_wrap_up(call.call_id)
        if wrap_up is not None:
            response.wrap_up.CopyFrom(wrap_up)
        return response

    @unary
    async def ListTranscript(
        self, request: pb.ListTranscriptRequest, context: Ctx
    ) -> pb.ListTranscriptResponse:
        validate_call_id(request.call_id)
        limit = _transcript_page_size(request.page_size, "page_size")
        offset = _transcript_offset(request.page_token)
        if await self._store.get_call(request.call_id) is None:
            raise call_not_found(request.call_id)
        segments, token = await self._transcript_page(request.call_id, offset, limit)
        return pb.ListTranscriptResponse(segments=segments, next_page_token=token)

    async def _transcript_page(
        self, call_id: str, offset: int, limit: int
    ) -> tuple[list[events_pb2.TranscriptUpdate], str]:
        """Up to `limit` segments from `offset`, cut before TRANSCRIPT_PAGE_BYTES (at least one)."""
        rows = await self._store.get_transcript(call_id, offset=offset, limit=limit + 1)
        page: list[events_pb2.TranscriptUpdate] = []
        size = 0
        for segment in rows[:limit]:
            size += segment.ByteSize()
            if page and size > TRANSCRIPT_PAGE_BYTES:
                break
            page.append(segment)
        more = len(rows) > len(page)
        return page, _transcript_token(offset + len(page)) if more else ""

    @unary
    async def ListCalls(self, request: pb.ListCallsRequest, context: Ctx) -> pb.ListCallsResponse:
        page_size = validate_page_size(request.page_size)
        try:
            calls, token = await self._store.list_calls(
                page_size=page_size, page_token=request.page_token, state=request.state
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
        validate_call_id(request.call_id)
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
            tool_call = await self._manager.decide_tool(request.call_id, request.tool_decision)
            return pb.SubmitFeedbackResponse(tool_call=tool_call)
        validate_feedback(request.feedback, "feedback")
        suggestion = await self._manager.submit_feedback(request.call_id, request.feedback)
        return pb.SubmitFeedbackResponse(suggestion=suggestion)

    @unary
    async def SaveWrapUp(self, request: pb.SaveWrapUpRequest, context: Ctx) -> pb.SaveWrapUpResponse:
        """Last write wins, on a live or ended call; `updated_by` is the caller's subject."""
        validate_wrap_up(request)
        principal = current_principal.get()
        subject = principal.subject if principal is not None else ""
        try:
            saved = await self._store.save_wrap_up(request.call_id, request.wrap_up, subject)
        except NotFound:
            raise call_not_found(request.call_id) from None
        return pb.SaveWrapUpResponse(wrap_up=saved)


HALF_CLOSE_GRACE_S = 0.2


async def _cancelled_soon(context: Ctx) -> bool:
    """Whether the RPC was cancelled, allowing for grpc reporting it just after the request stream ends.

    A client's cancellation (RST_STREAM) can end the request iterator a moment
    before the RPC is marked cancelled; a clean half-close never becomes a
    cancellation, so waiting briefly tells the two apart. The wait delays only
    the end of a cleanly closed stream, by at most `HALF_CLOSE_GRACE_S`.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HALF_CLOSE_GRACE_S
    while not context.cancelled():
        if context.done() or loop.time() >= deadline:
            return context.cancelled()
        await asyncio.sleep(0.01)
    return True


def _transcript_page_size(size: int, field: str) -> int:
    if not 0 <= size <= TRANSCRIPT_PAGE_MAX:
        raise InvalidArgument(
            Violation(
                field,
                f"must be 1 to {TRANSCRIPT_PAGE_MAX} (0 means {TRANSCRIPT_PAGE_DEFAULT})",
                "OUT_OF_RANGE",
            )
        )
    return size or TRANSCRIPT_PAGE_DEFAULT


def _transcript_token(offset: int) -> str:
    """Opaque to clients; the offset of the next segment (segments are append-only)."""
    return base64.urlsafe_b64encode(f"{_TOKEN_PREFIX}{offset}".encode()).decode()


def _transcript_offset(token: str) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        if not text.startswith(_TOKEN_PREFIX):
            raise ValueError(text)
        offset = int(text.removeprefix(_TOKEN_PREFIX))
        if offset < 0:
            raise ValueError(text)
    except (ValueError, UnicodeError):
        raise InvalidArgument(
            Violation(
                "page_token",
                "not a token from GetCall or ListTranscript; start again with an empty token",
                "INVALID",
            )
        ) from None
    return offset


def _joinable(config: call_pb2.CallConfig) -> call_pb2.CallConfig:
    """A join token streams its own call and no other (its config names it or nothing)."""
    principal = current_principal.get()
    if principal is None or principal.call_id is None:
        return config
    if config.call_id and config.call_id != principal.call_id:
        raise PermissionDenied(
            "JOIN_TOKEN_OTHER_CALL",
            "this join token is for another call; leave config.call_id empty or name the token's call",
            {"call_id": config.call_id},
        )
    joined = call_pb2.CallConfig()
    joined.CopyFrom(config)
    joined.call_id = principal.call_id
    return joined


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


class _MessageTooLarge(CallpilotError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "MESSAGE_TOO_LARGE"

    def __init__(self, size: int) -> None:
        super().__init__(
            f"this StreamCall message is {size} bytes; messages may be at most {MAX_REQUEST_BYTES} bytes "
            f"(audio chunks at most {MAX_AUDIO_CHUNK} bytes)",
            metadata={"limit": str(MAX_REQUEST_BYTES), "size": str(size)},
        )
