"""Call records of the SQL store: create, read, list (keyset-paged) and update."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from callpilot.server.errors import AlreadyExists, InvalidArgument, NotFound, Violation
from callpilot.server.store import convert, schema
from callpilot.server.store.base import StoreBase, check_id
from callpilot.v1 import call_pb2
from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError

DEFAULT_PAGE_SIZE = 20


class CallRecords(StoreBase):
    """The calls table for one tenant; the event log (events.py) owns last_sequence."""

    async def create_call(self, call: call_pb2.Call) -> None:
        """Insert a new call record; AlreadyExists if the id is taken.

        An unset create_time means "now"; an unset tenant means this Store's.
        """
        check_id(call.call_id, "call.call_id")
        if call.tenant_id and call.tenant_id != self._tenant:
            raise InvalidArgument(
                Violation(
                    "call.tenant_id", f'is "{call.tenant_id}" but this store serves tenant "{self._tenant}"'
                )
            )
        created = (
            convert.from_timestamp(call.create_time) if call.HasField("create_time") else convert.now_utc()
        )
        values = {
            "tenant_id": self._tenant,
            "call_id": call.call_id,
            "create_time": created,
            "last_sequence": call.last_sequence,
            **self._mutable_call_fields(call),
        }
        try:
            async with self._write() as conn:
                await conn.execute(schema.calls.insert().values(**values))
        except IntegrityError as exc:
            raise AlreadyExists(
                f'call "{call.call_id}" already exists', metadata={"call_id": call.call_id}
            ) from exc

    @staticmethod
    def _mutable_call_fields(call: call_pb2.Call) -> dict[str, object]:
        return {
            "state": int(call.state),
            "customer_id": call.customer_id,
            "config": call.config.SerializeToString(deterministic=True),
            "end_time": convert.from_timestamp(call.end_time) if call.HasField("end_time") else None,
            "end_reason": int(call.end_reason),
            "summary": call.summary,
        }

    async def get_call(self, call_id: str) -> call_pb2.Call | None:
        c = schema.calls.c
        async with self._read() as conn:
            row = (
                await conn.execute(
                    select(schema.calls).where(c.tenant_id == self._tenant, c.call_id == call_id)
                )
            ).first()
        return convert.call(row) if row is not None else None

    async def list_calls(
        self,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        page_token: str = "",
        state: call_pb2.CallState.ValueType = call_pb2.CALL_STATE_UNSPECIFIED,
    ) -> tuple[list[call_pb2.Call], str]:
        """A page of calls, newest first, and the token of the next page ("" on the last).

        CALL_STATE_UNSPECIFIED as `state` lists calls in every state.

        Keyset pagination on (create_time, call_id): unlike offsets, a page
        boundary does not shift when calls are created between requests, so
        no call is skipped or repeated.
        """
        size = page_size if page_size > 0 else DEFAULT_PAGE_SIZE
        c = schema.calls.c
        stmt = select(schema.calls).where(c.tenant_id == self._tenant)
        if state != call_pb2.CALL_STATE_UNSPECIFIED:
            stmt = stmt.where(c.state == int(state))
        if page_token:
            after_time, after_id = _decode_page_token(page_token)
            stmt = stmt.where(
                or_(c.create_time < after_time, and_(c.create_time == after_time, c.call_id < after_id))
            )
        stmt = stmt.order_by(c.create_time.desc(), c.call_id.desc()).limit(size + 1)
        async with self._read() as conn:
            rows = (await conn.execute(stmt)).all()
        page = rows[:size]
        token = _encode_page_token(page[-1].create_time, page[-1].call_id) if len(rows) > size else ""
        return [convert.call(r) for r in page], token

    async def update_call(self, call: call_pb2.Call) -> None:
        """Overwrite state, customer_id, end_time, end_reason, summary and config.

        create_time and last_sequence are not taken from `call`: the first
        never changes and the second belongs to the event log.
        """
        check_id(call.call_id, "call.call_id")
        c = schema.calls.c
        async with self._write() as conn:
            result = await conn.execute(
                update(schema.calls)
                .where(c.tenant_id == self._tenant, c.call_id == call.call_id)
                .values(**self._mutable_call_fields(call))
            )
            if result.rowcount == 0:
                raise NotFound(f'call "{call.call_id}" not found', metadata={"call_id": call.call_id})


def _encode_page_token(create_time: datetime, call_id: str) -> str:
    raw = json.dumps([create_time.isoformat(), call_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_page_token(token: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        when, call_id = json.loads(raw)
        parsed = datetime.fromisoformat(when)
        if parsed.tzinfo is None or not isinstance(call_id, str):
            raise ValueError("malformed")
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidArgument(Violation("page_token", "is not a token returned by ListCalls")) from exc
    return parsed, call_id
