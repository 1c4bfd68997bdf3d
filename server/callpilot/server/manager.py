"""Call lifecycle: creating calls, attaching live sessions, ending and draining.

The manager is the only place that decides whether a new call may start
(capacity, shutdown) and which session owns a call, so the rules for
"unknown call", "call already ended" and "already streaming" live together.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid

from callpilot.server.audio import AudioDecoder
from callpilot.server.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
    Violation,
)
from callpilot.server.session import CallSession, SessionDeps
from callpilot.v1 import call_pb2, common_pb2

log = logging.getLogger("callpilot.manager")

CALL_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
LANGUAGE_RE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")
MAX_HINTS = 100
MAX_HINT_LEN = 100
MAX_LABELS = 50


def validate_call_id(call_id: str, field: str = "call_id") -> None:
    if not call_id:
        raise InvalidArgument(Violation(field, "call_id is required", "REQUIRED"))
    if not CALL_ID_RE.match(call_id):
        raise InvalidArgument(
            Violation(
                field, "call ids are 1 to 64 characters of letters, digits, '_' and '-'", "INVALID_FORMAT"
            )
        )


def validate_config(config: call_pb2.CallConfig, prefix: str = "config") -> None:
    """Check everything in a call configuration, reporting every bad field at once."""
    violations: list[Violation] = []
    if config.call_id and not CALL_ID_RE.match(config.call_id):
        violations.append(
            Violation(
                f"{prefix}.call_id",
                "call ids are 1 to 64 characters of letters, digits, '_' and '-'",
                "INVALID_FORMAT",
            )
        )
    if config.language_code and not LANGUAGE_RE.match(config.language_code):
        violations.append(
            Violation(
                f"{prefix}.language_code",
                f"{config.language_code!r} is not a BCP-47 language tag like 'en' or 'en-US'",
            )
        )
    if len(config.phrase_hints) > MAX_HINTS:
        violations.append(
            Violation(f"{prefix}.phrase_hints", f"at most {MAX_HINTS} phrase hints are accepted")
        )
    for i, hint in enumerate(config.phrase_hints):
        if not hint.strip() or len(hint) > MAX_HINT_LEN:
            violations.append(
                Violation(
                    f"{prefix}.phrase_hints[{i}]", f"phrase hints must be 1 to {MAX_HINT_LEN} characters"
                )
            )
    if len(config.labels) > MAX_LABELS:
        violations.append(Violation(f"{prefix}.labels", f"at most {MAX_LABELS} labels are accepted"))
    if config.HasField("audio") and config.audio.encoding != common_pb2.AUDIO_ENCODING_UNSPECIFIED:
        try:
            AudioDecoder(config.audio)
        except InvalidArgument as exc:
            violations.extend(
                Violation(v.field.replace("config.", f"{prefix}.", 1), v.description, v.reason)
                for v in exc.violations
            )
    elif config.HasField("audio") and (config.audio.sample_rate_hertz or config.audio.channel_count):
        violations.append(
            Violation(
                f"{prefix}.audio.encoding",
                "set the encoding: AUDIO_ENCODING_LINEAR16, AUDIO_ENCODING_MULAW or AUDIO_ENCODING_ALAW",
                "REQUIRED",
            )
        )
    if violations:
        raise InvalidArgument(violations)


class SessionManager:
    def __init__(self, deps: SessionDeps, *, tenant_id: str, max_calls: int) -> None:
        self._deps = deps
        self._tenant_id = tenant_id
        self._max_calls = max_calls
        self._sessions: dict[str, CallSession] = {}
        self.accepting = True

    @property
    def sessions(self) -> dict[str, CallSession]:
        return self._sessions

    def _new_call(self, config: call_pb2.CallConfig) -> call_pb2.Call:
        call = call_pb2.Call(
            call_id=config.call_id or f"call-{uuid.uuid4().hex}",
            tenant_id=self._tenant_id,
            state=call_pb2.CALL_STATE_ACTIVE,
        )
        call.config.CopyFrom(config)
        call.config.call_id = call.call_id
        call.create_time.GetCurrentTime()
        return call

    def _check_accepting(self) -> None:
        if not self.accepting:
            raise Unavailable(
                "the server is shutting down and accepts no new calls; retry on another instance"
            )

    async def create_call(self, config: call_pb2.CallConfig) -> call_pb2.Call:
        self._check_accepting()
        validate_config(config)
        call = self._new_call(config)
        await self._deps.store.create_call(call)
        return call

    async def open(self, config: call_pb2.CallConfig) -> CallSession:
        """Create or attach the call named by `config` and return its (not yet started) session."""
        self._check_accepting()
        validate_config(config)
        if len(self._sessions) >= self._max_calls:
            raise ResourceExhausted(
                f"this server already has {self._max_calls} live calls (CALLPILOT_MAX_CALLS); retry later or elsewhere"
            )
        if config.call_id:
            existing = await self._deps.store.get_call(config.call_id)
            if existing is None:
                raise NotFound(
                    f"call {config.call_id!r} does not exist; leave config.call_id empty to create a new call",
                    reason="CALL_NOT_FOUND",
                    metadata={"call_id": config.call_id},
                )
            if existing.state == call_pb2.CALL_STATE_ENDED:
                raise FailedPrecondition(
                    f"call {config.call_id!r} has ended; start a new call",
                    reason="CALL_ENDED",
                    metadata={"call_id": config.call_id},
                )
            if config.call_id in self._sessions:
                raise FailedPrecondition(
                    f"call {config.call_id!r} is already being streamed by another client",
                    reason="CALL_ALREADY_STREAMING",
                    metadata={"call_id": config.call_id},
                )
            # The stream's config refines the one given at creation.
            merged = call_pb2.CallConfig()
            merged.CopyFrom(existing.config)
            merged.MergeFrom(config)
            existing.config.CopyFrom(merged)
            call = existing
            await self._deps.store.update_call(call)
        else:
            call = self._new_call(config)
            await self._deps.store.create_call(call)
        session = CallSession(call, self._deps, on_closed=self._closed)
        self._sessions[call.call_id] = session
        return session

    def _closed(self, session: CallSession) -> None:
        if self._sessions.get(session.call_id) is session:
            del self._sessions[session.call_id]

    async def end_call(self, call_id: str, detail: str) -> call_pb2.Call:
        validate_call_id(call_id)
        session = self._sessions.get(call_id)
        if session is not None:
            await session.end(call_pb2.CALL_END_REASON_END_CALL_RPC, detail)
        else:
            call = await self._deps.store.get_call(call_id)
            if call is None:
                raise NotFound(
                    f"call {call_id!r} does not exist", reason="CALL_NOT_FOUND", metadata={"call_id": call_id}
                )
            if call.state != call_pb2.CALL_STATE_ENDED:
                # Created but never streamed (or orphaned by a crash): end it through a
                # short-lived session so the event log still closes with call_ended.
                orphan = CallSession(call, self._deps)
                if call.last_sequence == 0:
                    await orphan.start()
                await orphan.end(call_pb2.CALL_END_REASON_END_CALL_RPC, detail)
        call = await self._deps.store.get_call(call_id)
        assert call is not None
        return call

    async def drain(self, timeout: float) -> None:
        """Stop accepting calls and end every live one, flushing its finals."""
        self.accepting = False
        sessions = list(self._sessions.values())
        if not sessions:
            return
        log.info("draining %d live call(s)", len(sessions))
        tasks = [
            s.request_end(call_pb2.CALL_END_REASON_SERVER_SHUTDOWN, "server shutting down") for s in sessions
        ]
        _done, pending = await asyncio.wait(tasks, timeout=timeout)
        if pending:
            log.warning("%d call(s) did not finish draining within %.1fs", len(pending), timeout)
