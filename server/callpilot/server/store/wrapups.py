"""The agent's wrap-up of a call: one row per call, the last save wins.

A wrap-up is a document the agent edits, not a history: saving again
replaces it (summary, disposition, follow-ups, notes) and stamps who saved
it and when. The whole WrapUp is kept serialized, so fields added to the
contract later round-trip unchanged; `disposition` is a column of its own
for analytics.
"""

from __future__ import annotations

from callpilot.server.errors import NotFound
from callpilot.server.store import convert, schema
from callpilot.server.store.base import StoreBase
from callpilot.server.store.upsert import upsert
from callpilot.v1 import assist_service_pb2
from sqlalchemy import select


class WrapUps(StoreBase):
    """Wrap-ups of one tenant's calls."""

    async def save_wrap_up(
        self, call_id: str, wrap_up: assist_service_pb2.WrapUp, updated_by: str
    ) -> assist_service_pb2.WrapUp:
        """Replace the call's wrap-up and return it as saved (with update_time and updated_by).

        The call must exist in this tenant (NotFound, reason CALL_NOT_FOUND,
        otherwise); live and ended calls are both accepted.
        """
        saved = assist_service_pb2.WrapUp()
        saved.CopyFrom(wrap_up)
        now = convert.now_utc()
        saved.update_time.FromDatetime(now)
        saved.updated_by = updated_by
        c = schema.calls.c
        async with self._write() as conn:
            exists = (
                await conn.execute(select(c.call_id).where(c.tenant_id == self._tenant, c.call_id == call_id))
            ).first()
            if exists is None:
                raise NotFound(
                    f"call {call_id!r} does not exist", reason="CALL_NOT_FOUND", metadata={"call_id": call_id}
                )
            row = {
                "tenant_id": self._tenant,
                "call_id": call_id,
                "disposition": int(saved.disposition),
                "updated_by": updated_by,
                "update_time": now,
                "data": saved.SerializeToString(),
            }
            await upsert(conn, schema.wrapups, [row], ["tenant_id", "call_id"])
        return saved

    async def get_wrap_up(self, call_id: str) -> assist_service_pb2.WrapUp | None:
        """The call's saved wrap-up, or None when none was saved."""
        w = schema.wrapups.c
        async with self._read() as conn:
            data = (
                await conn.execute(select(w.data).where(w.tenant_id == self._tenant, w.call_id == call_id))
            ).scalar_one_or_none()
        return None if data is None else assist_service_pb2.WrapUp.FromString(data)
