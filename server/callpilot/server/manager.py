"""Call lifecycle: creating calls, attaching live sessions, ending, draining and recovery.

The manager is the only place that decides whether a new call may start
(capacity, shutdown) and which session owns a call, so the rules for
"unknown call", "call already ended" and "already streaming" live together.
Requests reach it validated (api.validation).

Cancellation: opening a call (creating its record and registering its
session) is one step a cancelled caller cannot split; if the caller is
gone by the time it completes, the new session is ended at once
(STREAM_ABORTED) so no call is left ACTIVE without a session.

Recovery: this server is the only writer of its database's live calls (one
process per database; the in-process bus cannot span processes). A call
still ACTIVE when the server starts was therefore left by a process that
died (kill -9, OOM, power loss): its audio and STT state are gone with it
and its client's stream broke. `recover()` ends each such call with
CALL_END_REASON_SERVER_RESTART, appending call_ended after everything
already stored, so its record is final and its watchers finish.

Admission (see admission.py): `open` and `create_call` take their slot in
the tenant's gate and the server's shared gate before their first await,
so concurrent requests never overshoot a limit. The slot is released when
the session closes or the creation fails; a call created ahead of its
stream keeps a reservation until its stream attaches (the slot passes to
the session), it is ended, or `reservation_s` passes.

Drain: live calls get `shutdown_grace_s` to flush; a call still flushing
then is cut short (`CallSession.cut_short`): whatever STT produced is kept,
what it had not decoded is dropped and a durable SHUTDOWN_CUT_SHORT notice
says so, and call_ended is written for every call.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from callpilot.server.admission import RETRY_DELAY_S, Gate, Slot, admit
from callpilot.server.api.validation import call_not_found
from callpilot.server.cluster.lease import TenantAtLimit
from callpilot.server.cluster.link import ClusterLink
from callpilot.server.errors import FailedPrecondition, ResourceExhausted, Unavailable
from callpilot.server.session import CallSession, SessionDeps
from callpilot.v1 import assist_service_pb2, call_pb2, events_pb2

log = logging.getLogger("callpilot.manager")

RECOVERY_PAGE = 100
# How long a call created ahead of its stream holds its slot (by default the join token's lifetime).
DEFAULT_RESERVATION_S = 900.0
# After the grace, how long cut-short calls get to write their notice and call_ended.
CUT_SHORT_WRITE_S = 5.0
# What RetryInfo suggests to a client refused while this server drains.
DRAIN_RETRY_S = 1.0


class SessionManager:
    def __init__(
        self,
        deps: SessionDeps,
        *,
        tenant_id: str,
        max_calls: int,
        cluster: ClusterLink | None = None,
        cluster_max_calls: int = 0,
        server_gate: Gate | None = None,
        reservation_s: float = DEFAULT_RESERVATION_S,
    ) -> None:
        """`cluster_max_calls` > 0: the tenant's live calls across every instance
        (many instances only; `max_calls` is this instance's share)."""
        self._deps = deps
        self._tenant_id = tenant_id
        self._max_calls = max_calls
        self._tenant_gate = Gate(
            max_calls, what=f"tenant {tenant_id!r}", setting="CALLPILOT_MAX_CALLS_PER_TENANT"
        )
        # The server's gate is checked first: when both are full, the server-wide limit is the news.
        self._gates: tuple[Gate, ...] = (
            (server_gate, self._tenant_gate) if server_gate is not None else (self._tenant_gate,)
        )
        self._reservation_s = reservation_s
        # Many instances: who owns each call, and forwarding to the owner.
        self._cluster = cluster
        self._cluster_max_calls = cluster_max_calls
        self._sessions: dict[str, CallSession] = {}
        self._slots: dict[CallSession, Slot] = {}
        # Calls created ahead of their stream: their slot and its expiry.
        self._reserved: dict[str, tuple[Slot, asyncio.TimerHandle]] = {}
        self.accepting = True

    @property
    def deps(self) -> SessionDeps:
        return self._deps

    @property
    def tenant_id(self) -> str:
        return self._tenant_id

    @property
    def sessions(self) -> dict[str, CallSession]:
        return self._sessions

    def is_live(self, call_id: str) -> bool:
        return call_id in self._sessions

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
            raise draining_error()

    async def create_call(self, config: call_pb2.CallConfig) -> call_pb2.Call:
        """Create a call ahead of its stream (validated config); it reserves a slot.

        The slot is taken before the first await (admission is atomic) and
        held until the call's stream attaches, it is ended, or the
        reservation expires.
        """
        self._check_accepting()
        slot = admit(*self._gates)
        try:
            call = self._new_call(config)
            await self._deps.store.create_call(call)
        except BaseException:
            slot.release()
            raise
        handle = asyncio.get_running_loop().call_later(self._reservation_s, self._expire, call.call_id)
        self._reserved[call.call_id] = (slot, handle)
        return call

    def _expire(self, call_id: str) -> None:
        """A created call was not streamed in time: its slot goes back (the call stays ACTIVE)."""
        self._unreserve(call_id)

    def _unreserve(self, call_id: str) -> Slot | None:
        held = self._reserved.pop(call_id, None)
        if held is None:
            return None
        slot, handle = held
        handle.cancel()
        return slot

    @property
    def calls_admitted(self) -> int:
        """Slots this tenant holds: live sessions, sessions opening and reserved calls."""
        return self._tenant_gate.in_use

    async def open(self, config: call_pb2.CallConfig) -> CallSession:
        """Create or attach the call named by `config` and return its (not yet started) session.

        Admission happens before the first await: a reserved call (created
        by CreateCall) brings its own slot, any other takes one or is
        refused with RESOURCE_EXHAUSTED. The session is registered even if
        the caller is cancelled meanwhile; it is then ended at once.
        """
        self._check_accepting()
        slot = self._unreserve(config.call_id) if config.call_id else None
        if slot is None:
            slot = admit(*self._gates)
        task = asyncio.ensure_future(self._open_admitted(config, slot))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(_end_abandoned)
            raise

    async def _open_admitted(self, config: call_pb2.CallConfig, slot: Slot) -> CallSession:
        try:
            session = await self._open(config)
        except BaseException:
            slot.release()
            raise
        self._slots[session] = slot
        return session

    async def _open(self, config: call_pb2.CallConfig) -> CallSession:
        if config.call_id:
            existing = await self._deps.store.get_call(config.call_id)
            if existing is None:
                raise call_not_found(config.call_id, "leave config.call_id empty to create a new call")
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
            await self._own(call.call_id)
            await self._deps.store.update_call(call)
            if config.call_id in self._sessions:  # attached by another client meanwhile
                raise FailedPrecondition(
                    f"call {config.call_id!r} is already being streamed by another client",
                    reason="CALL_ALREADY_STREAMING",
                    metadata={"call_id": config.call_id},
                )
        else:
            call = self._new_call(config)
            # Owned (and counted against the tenant's cluster-wide limit) before it is
            # stored, so a refused call leaves no record behind.
            await self._own(call.call_id)
            try:
                await self._deps.store.create_call(call)
            except BaseException:
                if self._cluster is not None:
                    self._cluster.release(call.call_id)
                raise
        session = CallSession(call, self._deps, on_closed=self._closed)
        if self._cluster is not None:
            cluster, call_id = self._cluster, call.call_id
            session.events.still_owner = lambda: cluster.still_owner(call_id)
        self._sessions[call.call_id] = session
        return session

    async def _own(self, call_id: str) -> None:
        """Take the call's ownership lease (many instances); refuse a call another instance streams."""
        if self._cluster is None:
            return
        try:
            holder = await self._cluster.acquire(call_id, limit=self._cluster_max_calls)
        except TenantAtLimit as exc:
            raise ResourceExhausted(
                f"tenant {self._tenant_id!r} already has {exc.live} live calls across all instances "
                f"(CALLPILOT_MAX_CALLS_PER_TENANT={exc.limit}); retry later",
                metadata={"limit": str(exc.limit), "setting": "CALLPILOT_MAX_CALLS_PER_TENANT"},
                retry_delay_s=RETRY_DELAY_S,
            ) from None
        if holder is not None:
            raise FailedPrecondition(
                f"call {call_id!r} is being streamed through another server instance ({holder}); "
                "if that instance died, retry in a few seconds",
                reason="CALL_ALREADY_STREAMING",
                metadata={"call_id": call_id, "owner": holder},
            )

    async def _owner_elsewhere(self, call_id: str) -> str | None:
        """The other instance that owns a call not live here, if any."""
        if self._cluster is None or call_id in self._sessions:
            return None
        owner = await self._cluster.owner(call_id)
        return owner if owner is not None and owner != self._cluster.instance_id else None

    def fence(self, call_id: str, why: str) -> None:
        """This instance lost the call to another: stop writing into it, end the local session."""
        session = self._sessions.get(call_id)
        if session is not None:
            session.events.fenced = why
            session.request_end(call_pb2.CALL_END_REASON_OWNER_LOST, why)

    def _closed(self, session: CallSession) -> None:
        if self._sessions.get(session.call_id) is session:
            del self._sessions[session.call_id]
            if self._cluster is not None:
                self._cluster.release(session.call_id)
        slot = self._slots.pop(session, None)
        if slot is not None:
            slot.release()

    async def end_call(self, call_id: str, detail: str) -> call_pb2.Call:
        session = self._sessions.get(call_id)
        owner = await self._owner_elsewhere(call_id)
        if owner is not None:
            assert self._cluster is not None
            body = await self._cluster.forward(owner, call_id, "end", detail.encode())
            return call_pb2.Call.FromString(body)
        if session is not None:
            await session.end(call_pb2.CALL_END_REASON_END_CALL_RPC, detail)
        else:
            call = await self._deps.store.get_call(call_id)
            if call is None:
                raise call_not_found(call_id)
            if call.state != call_pb2.CALL_STATE_ENDED:
                # Created but never streamed: end it through a short-lived
                # session so the event log still closes with call_ended.
                await self._end_orphan(call, call_pb2.CALL_END_REASON_END_CALL_RPC, detail)
            slot = self._unreserve(call_id)
            if slot is not None:
                slot.release()
        call = await self._deps.store.get_call(call_id)
        assert call is not None
        return call

    async def submit_feedback(
        self, call_id: str, feedback: assist_service_pb2.SuggestionFeedback
    ) -> assist_service_pb2.Suggestion:
        """Feedback on a suggestion: the live session's (wherever it runs), or the stored record."""
        session = self._sessions.get(call_id)
        if session is not None:
            return await session.record_feedback(feedback)
        owner = await self._owner_elsewhere(call_id)
        if owner is not None:
            assert self._cluster is not None
            body = await self._cluster.forward(owner, call_id, "feedback", feedback.SerializeToString())
            return assist_service_pb2.Suggestion.FromString(body)
        return await self._deps.store.record_feedback(call_id, feedback)

    async def decide_tool(self, call_id: str, decision: events_pb2.ToolDecision) -> events_pb2.ToolCall:
        """The agent's decision on a proposed tool, applied by the call's live session."""
        session = self._sessions.get(call_id)
        if session is not None:
            return await session.decide_tool(decision)
        owner = await self._owner_elsewhere(call_id)
        if owner is not None:
            assert self._cluster is not None
            body = await self._cluster.forward(owner, call_id, "decide", decision.SerializeToString())
            return events_pb2.ToolCall.FromString(body)
        if await self._deps.store.get_call(call_id) is None:
            raise call_not_found(call_id)
        raise FailedPrecondition(
            f"call {call_id!r} is not live; proposals still waiting were cancelled when it ended",
            reason="CALL_NOT_LIVE",
            metadata={"call_id": call_id},
        )

    async def suggest_now(self, call_id: str, query: str) -> None:
        session = self._sessions.get(call_id)
        if session is not None:
            session.suggest_now(query)
            return
        owner = await self._owner_elsewhere(call_id)
        if owner is None:
            raise FailedPrecondition(
                f"call {call_id!r} is not live", reason="CALL_NOT_LIVE", metadata={"call_id": call_id}
            )
        assert self._cluster is not None
        await self._cluster.forward(owner, call_id, "suggest", query.encode())

    async def end_owner_lost(self, call_id: str) -> bool:
        """End a live call whose owning instance is gone (the reaper); True if this ended it."""
        if self._cluster is None or await self._cluster.acquire(call_id) is not None:
            return False
        try:
            call = await self._deps.store.get_call(call_id)
            if call is None or call.state == call_pb2.CALL_STATE_ENDED:
                return False
            await self._end_orphan(
                call,
                call_pb2.CALL_END_REASON_OWNER_LOST,
                "the server instance streaming this call stopped; another instance ended it",
            )
            return True
        finally:
            self._cluster.release(call_id)

    async def _end_orphan(
        self, call: call_pb2.Call, reason: call_pb2.CallEndReason.ValueType, detail: str
    ) -> None:
        # A call with no event yet gets its call_started from the session's end.
        await CallSession(call, self._deps).end(reason, detail)

    async def recover(self) -> int:
        """End the calls a dead process left ACTIVE (SERVER_RESTART); returns how many.

        Run at start-up, before the port opens: no session is live yet, so
        every ACTIVE call in the store is an orphan. Calls created ahead of
        their stream (CreateCall, no event yet) are ended too: their creator
        lost the server that would have streamed them.
        """
        assert not self._sessions, "recover() runs before any call is served"
        orphans: list[call_pb2.Call] = []
        token = ""
        while True:
            page, token = await self._deps.store.list_calls(
                page_size=RECOVERY_PAGE, page_token=token, state=call_pb2.CALL_STATE_ACTIVE
            )
            orphans.extend(page)
            if not token:
                break
        for call in orphans:
            log.warning(
                "call %s was left active by a previous process (last event %d); ending it",
                call.call_id,
                call.last_sequence,
            )
            await self._end_orphan(
                call,
                call_pb2.CALL_END_REASON_SERVER_RESTART,
                "the server restarted; the process streaming this call had stopped",
            )
        return len(orphans)

    async def drain(self, timeout: float) -> None:
        """Stop accepting calls and end every live one, flushing its finals.

        Calls still flushing after `timeout` are cut short: each still gets
        a SHUTDOWN_CUT_SHORT notice naming what was dropped, then call_ended.
        """
        self.accepting = False
        for call_id in list(self._reserved):
            slot = self._unreserve(call_id)
            if slot is not None:
                slot.release()
        sessions = list(self._sessions.values())
        if not sessions:
            return
        log.info("draining %d live call(s)", len(sessions))
        tasks = {
            s.request_end(call_pb2.CALL_END_REASON_SERVER_SHUTDOWN, "server shutting down"): s
            for s in sessions
        }
        _done, pending = await asyncio.wait(tasks, timeout=timeout)
        if not pending:
            return
        log.warning(
            "%d call(s) did not finish draining within %.1fs; cutting them short", len(pending), timeout
        )
        for task in pending:
            tasks[task].cut_short()
        _done, pending = await asyncio.wait(pending, timeout=CUT_SHORT_WRITE_S)
        if pending:
            log.error("%d call(s) could not record their end; start-up recovery will end them", len(pending))


def draining_error() -> Unavailable:
    """What a new call gets while the server drains: UNAVAILABLE, SERVER_DRAINING, a retry delay."""
    return Unavailable(
        "the server is shutting down and accepts no new calls; retry on another instance",
        reason="SERVER_DRAINING",
        retry_delay_s=DRAIN_RETRY_S,
    )


def _end_abandoned(task: asyncio.Future[CallSession]) -> None:
    """The caller of `open` was cancelled: end the session it would have driven."""
    if task.cancelled() or task.exception() is not None:
        return
    task.result().request_end(
        call_pb2.CALL_END_REASON_STREAM_ABORTED, "the client went away while the call opened"
    )
