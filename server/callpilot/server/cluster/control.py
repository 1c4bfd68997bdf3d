"""Requests addressed to a live call on another instance, forwarded to its owner.

EndCall, SubmitFeedback (feedback and tool decisions) and suggest-now act on
the call's session, which lives on the owner only. Any other instance sends
the request to the owner's control stream ``cp:instance:<id>:control`` with
a reply key, and waits on that key (BLPOP) for the outcome:

- the owner runs the request against the session and pushes the reply: the
  response message, or the error (code, message, reason, metadata,
  violations) that the caller then raises as its own, so a client sees the
  same status whichever instance it talked to;
- no reply within `REPLY_TIMEOUT_S` is UNAVAILABLE ("the call's owner did
  not answer"), never a silent no-op. The owner drops requests older than
  the timeout, so a late request is not applied after its caller gave up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from callpilot.server.cluster.hub import RedisHub
from callpilot.server.errors import CallpilotError, Unavailable, Violation
from redis.exceptions import RedisError

log = logging.getLogger("callpilot.cluster.control")

REPLY_TIMEOUT_S = 10.0
REPLY_TTL_S = 30
CONTROL_MAXLEN = 10_000
READ_BLOCK_MS = 1000

Handler = Callable[[str, str, str, bytes], Awaitable[bytes]]
"""(tenant_id, call_id, op, request bytes) -> response bytes; raises CallpilotError."""


class RemoteError(CallpilotError):
    """An error raised by the owner, re-raised on the instance the client called."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        reason: str,
        metadata: dict[str, str],
        violations: list[Violation],
    ) -> None:
        super().__init__(message, metadata=metadata, violations=violations)
        self.code = code
        self.reason = reason


def _encode_error(err: CallpilotError) -> dict[str, Any]:
    return {
        "code": err.code.name,
        "message": err.message,
        "reason": err.reason,
        "metadata": err.metadata,
        "violations": [[v.field, v.description, v.reason] for v in err.violations],
    }


def _decode_error(data: dict[str, Any]) -> RemoteError:
    return RemoteError(
        grpc.StatusCode[data["code"]],
        data["message"],
        data["reason"],
        dict(data["metadata"]),
        [Violation(*v) for v in data["violations"]],
    )


class ControlServer:
    """Runs requests for this instance's calls that arrive from other instances."""

    def __init__(self, hub: RedisHub, handler: Handler) -> None:
        self._hub = hub
        self._handler = handler
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()

    @property
    def stream(self) -> str:
        return self._hub.instance_key("control")

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="control-server")

    async def _loop(self) -> None:
        redis = self._hub.redis
        last_id: Any = "$"
        while True:
            try:
                response: Any = await redis.xread({self.stream: last_id}, block=READ_BLOCK_MS, count=64)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("control stream unavailable (retrying): %s", exc)
                await asyncio.sleep(1.0)
                continue
            for _stream, entries in response or ():
                for entry_id, fields in entries:
                    last_id = entry_id
                    task = asyncio.create_task(self._run(fields))
                    self._inflight.add(task)
                    task.add_done_callback(self._inflight.discard)

    async def _run(self, fields: dict[bytes, bytes]) -> None:
        reply_key = fields[b"reply"].decode()
        if time.time() - float(fields[b"sent"]) > REPLY_TIMEOUT_S:
            return  # the caller has given up; applying it now would surprise everyone
        reply: dict[str, Any]
        try:
            payload = await self._handler(
                fields[b"tenant"].decode(), fields[b"call"].decode(), fields[b"op"].decode(), fields[b"body"]
            )
            reply = {"ok": payload.hex()}
        except CallpilotError as err:
            reply = {"error": _encode_error(err)}
        except Exception:
            log.exception("forwarded request failed")
            reply = {
                "error": _encode_error(
                    CallpilotError("the call's owner failed to apply the request; its log has details")
                )
            }
        try:
            async with self._hub.redis.pipeline(transaction=False) as pipe:
                pipe.lpush(reply_key, json.dumps(reply))
                pipe.expire(reply_key, REPLY_TTL_S)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("could not reply to a forwarded request: %s", exc)

    async def aclose(self) -> None:
        tasks = [t for t in (self._task, *self._inflight) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def forward(
    hub: RedisHub, owner_instance: str, tenant_id: str, call_id: str, op: str, body: bytes
) -> bytes:
    """Send a request to the owner of a call and return its response bytes.

    Raises the owner's error as a RemoteError, or Unavailable when the owner
    does not answer in time or Redis cannot be reached.
    """
    reply_key = ":".join((hub.prefix, "reply", uuid.uuid4().hex))
    stream = ":".join((hub.prefix, "instance", owner_instance, "control"))
    redis = hub.redis
    try:
        await redis.xadd(
            stream,
            {
                "tenant": tenant_id,
                "call": call_id,
                "op": op,
                "body": body,
                "reply": reply_key,
                "sent": repr(time.time()),
            },
            maxlen=CONTROL_MAXLEN,
            approximate=True,
        )
        answer: Any = await redis.blpop([reply_key], timeout=REPLY_TIMEOUT_S)
    except (RedisError, OSError) as exc:
        raise Unavailable(f"cannot reach the instance that owns call {call_id!r}: {exc}") from None
    if answer is None:
        raise Unavailable(
            f"the instance that owns call {call_id!r} did not answer within {REPLY_TIMEOUT_S:g}s; retry"
        )
    data = json.loads(answer[1])
    if "error" in data:
        raise _decode_error(data["error"])
    return bytes.fromhex(data["ok"])
