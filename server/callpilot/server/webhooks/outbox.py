"""The webhook tables: endpoints, the delivery outbox and the attempts log.

Durability: `write_for_event` is called by the event log inside the
transaction that stores a call event (and `write_for_feedback` by the one
that stores feedback), so a delivery row exists exactly when its event does:
an instance that dies after the commit loses nothing, and one that dies
before it has published nothing. The event is published to watchers only
after that commit.

Claiming: a worker takes due rows with `claim`, which moves their
`next_attempt_time` a lease ahead and names itself `lease_owner` in one
transaction (``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, a
``BEGIN IMMEDIATE`` single-writer transaction on SQLite, taken in the same
in-process writer turn as the store's writes), so two instances
never send the same attempt at once, and a worker that dies mid-attempt
leaves the row due again when the lease ends. At-least-once follows; a
delivery keeps its id (the ``webhook-id``) across attempts, so receivers
deduplicate by it.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from callpilot.server.store import convert, schema
from callpilot.server.store.engine import write_transaction
from callpilot.server.webhooks import payloads
from callpilot.server.webhooks.settings import WebhookSettings
from callpilot.v1 import assist_service_pb2, events_pb2
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

PENDING = 1
DELIVERED = 2
FAILED = 3

_settings: WebhookSettings | None = None


def settings() -> WebhookSettings:
    """The process's webhook settings, read from the environment once."""
    global _settings
    if _settings is None:
        _settings = WebhookSettings.from_env()
    return _settings


def _wake() -> None:
    # Imported late: the worker module imports aiohttp, the store need not.
    from callpilot.server.webhooks import worker

    worker.wake_soon()


@dataclass(frozen=True, slots=True)
class Endpoint:
    endpoint_id: str
    tenant_id: str
    url: str
    event_types: tuple[str, ...]
    description: str
    enabled: bool
    disabled_reason: str
    create_time: datetime


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery a worker holds the lease of, with what it needs to send it."""

    delivery_id: str
    tenant_id: str
    endpoint_id: str
    url: str
    secret: str
    payload: str
    attempts: int
    create_time: datetime


@dataclass(frozen=True, slots=True)
class Attempt:
    time: datetime
    http_status: int
    error: str
    duration_ms: int


@dataclass(frozen=True, slots=True)
class Delivery:
    delivery_id: str
    endpoint_id: str
    event_type: str
    call_id: str
    state: int
    create_time: datetime
    next_attempt_time: datetime | None
    attempts: list[Attempt]


def new_delivery_id() -> str:
    return "msg_" + uuid.uuid4().hex


def _endpoint(m: Mapping[Any, Any]) -> Endpoint:
    return Endpoint(
        endpoint_id=m["endpoint_id"],
        tenant_id=m["tenant_id"],
        url=m["url"],
        event_types=tuple(t for t in m["event_types"].split(",") if t),
        description=m["description"],
        enabled=bool(m["enabled"]),
        disabled_reason=m["disabled_reason"],
        create_time=m["create_time"],
    )


# --- the hooks called inside the event log's transactions ----------------------------


async def _subscribed(conn: AsyncConnection, tenant_id: str, event_type: str) -> list[str]:
    e = schema.webhook_endpoints.c
    rows = (await conn.execute(select(e.endpoint_id, e.event_types).where(e.tenant_id == tenant_id))).all()
    # Disabled endpoints still queue: re-enabling one resumes where it stopped.
    return [r.endpoint_id for r in rows if event_type in r.event_types.split(",")]


async def _enqueue(
    conn: AsyncConnection, tenant_id: str, endpoints: Sequence[str], event_type: str, call_id: str, body: str
) -> None:
    now = convert.now_utc()
    await conn.execute(
        schema.webhook_deliveries.insert(),
        [
            {
                "delivery_id": new_delivery_id(),
                "tenant_id": tenant_id,
                "endpoint_id": endpoint_id,
                "event_type": event_type,
                "call_id": call_id,
                "payload": body,
                "state": PENDING,
                "attempts": 0,
                "create_time": now,
                "next_attempt_time": now,
                "delivered_time": None,
                "lease_owner": "",
                "last_error": "",
            }
            for endpoint_id in endpoints
        ],
    )
    _wake()


async def write_for_event(
    conn: AsyncConnection, event: events_pb2.CallEvent, tenant_id: str, when: datetime
) -> None:
    """Queue the webhooks a stored call event raises, in the caller's transaction.

    Costs nothing for events no webhook type maps to, and one indexed query
    for the others when the tenant has no endpoints.
    """
    event_type = payloads.event_type_of(event)
    if event_type is None:
        return
    endpoints = await _subscribed(conn, tenant_id, event_type)
    if not endpoints:
        return
    data = await payloads.event_data(conn, tenant_id, event_type, event, when, settings().transcript_url)
    await _enqueue(
        conn, tenant_id, endpoints, event_type, event.call_id, payloads.envelope(event_type, when, data)
    )


async def write_for_events(
    conn: AsyncConnection, events: Sequence[tuple[events_pb2.CallEvent, str, datetime]]
) -> None:
    """`write_for_event` for each (event, tenant_id, time) of a group-committed batch, in order.

    Reads each tenant's endpoints once per batch rather than once per event:
    the same rows, in the same transaction, so the outcome is the same.
    """
    endpoints_of: dict[str, list[tuple[str, str]]] = {}
    for event, tenant_id, when in events:
        event_type = payloads.event_type_of(event)
        if event_type is None:
            continue
        if tenant_id not in endpoints_of:
            e = schema.webhook_endpoints.c
            rows = await conn.execute(select(e.endpoint_id, e.event_types).where(e.tenant_id == tenant_id))
            endpoints_of[tenant_id] = [(r.endpoint_id, r.event_types) for r in rows]
        endpoints = [eid for eid, types in endpoints_of[tenant_id] if event_type in types.split(",")]
        if not endpoints:
            continue
        data = await payloads.event_data(conn, tenant_id, event_type, event, when, settings().transcript_url)
        await _enqueue(
            conn, tenant_id, endpoints, event_type, event.call_id, payloads.envelope(event_type, when, data)
        )


async def write_for_feedback(
    conn: AsyncConnection, tenant_id: str, call_id: str, feedback: assist_service_pb2.SuggestionFeedback
) -> None:
    """Queue suggestion.feedback webhooks, in the transaction that stores the feedback."""
    endpoints = await _subscribed(conn, tenant_id, payloads.SUGGESTION_FEEDBACK)
    if endpoints:
        body = payloads.envelope(
            payloads.SUGGESTION_FEEDBACK, convert.now_utc(), payloads.feedback_data(call_id, feedback)
        )
        await _enqueue(conn, tenant_id, endpoints, payloads.SUGGESTION_FEEDBACK, call_id, body)


# --- endpoints -----------------------------------------------------------------------


async def create_endpoint(
    engine: AsyncEngine, tenant_id: str, url: str, event_types: Sequence[str], description: str, secret: str
) -> Endpoint:
    values = {
        "endpoint_id": "we_" + uuid.uuid4().hex,
        "tenant_id": tenant_id,
        "url": url,
        "secret": secret,
        "event_types": ",".join(event_types),
        "description": description,
        "enabled": True,
        "disabled_reason": "",
        "create_time": convert.now_utc(),
        "failing_since": None,
    }
    async with write_transaction(engine) as conn:
        await conn.execute(schema.webhook_endpoints.insert().values(**values))
    return _endpoint(values)


async def list_endpoints(engine: AsyncEngine, tenant_id: str) -> list[Endpoint]:
    e = schema.webhook_endpoints.c
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(schema.webhook_endpoints)
                .where(e.tenant_id == tenant_id)
                .order_by(e.create_time, e.endpoint_id)
            )
        ).all()
    return [_endpoint(r._mapping) for r in rows]


async def get_endpoint(engine: AsyncEngine, tenant_id: str, endpoint_id: str) -> Endpoint | None:
    e = schema.webhook_endpoints.c
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(schema.webhook_endpoints).where(e.tenant_id == tenant_id, e.endpoint_id == endpoint_id)
            )
        ).first()
    return _endpoint(row._mapping) if row is not None else None


async def update_endpoint(
    engine: AsyncEngine, tenant_id: str, endpoint_id: str, changes: dict[str, object]
) -> Endpoint | None:
    """Apply `changes` (url, event_types, enabled, description); None if there is no such endpoint."""
    values = dict(changes)
    if "event_types" in values:
        types = values["event_types"]
        assert isinstance(types, list)
        values["event_types"] = ",".join(types)
    if values.get("enabled") is True:
        values["disabled_reason"] = ""
        values["failing_since"] = None
    elif values.get("enabled") is False:
        values["disabled_reason"] = "disabled through the API"
    e = schema.webhook_endpoints.c
    async with write_transaction(engine) as conn:
        result = await conn.execute(
            update(schema.webhook_endpoints)
            .where(e.tenant_id == tenant_id, e.endpoint_id == endpoint_id)
            .values(**values)
        )
        if result.rowcount == 0:
            return None
        if values.get("enabled") is True:
            # Resume straight away rather than at the end of a long backoff.
            d = schema.webhook_deliveries.c
            await conn.execute(
                update(schema.webhook_deliveries)
                .where(d.endpoint_id == endpoint_id, d.state == PENDING)
                .values(next_attempt_time=convert.now_utc())
            )
    return await get_endpoint(engine, tenant_id, endpoint_id)


async def delete_endpoint(engine: AsyncEngine, tenant_id: str, endpoint_id: str) -> bool:
    e = schema.webhook_endpoints.c
    d = schema.webhook_deliveries.c
    a = schema.webhook_attempts.c
    async with write_transaction(engine) as conn:
        found = (
            await conn.execute(
                select(e.endpoint_id).where(e.tenant_id == tenant_id, e.endpoint_id == endpoint_id)
            )
        ).first()
        if found is None:
            return False
        # Explicit rather than relying on ON DELETE CASCADE, which a database
        # restored without its foreign keys would not apply.
        ids = select(d.delivery_id).where(d.endpoint_id == endpoint_id).scalar_subquery()
        await conn.execute(delete(schema.webhook_attempts).where(a.delivery_id.in_(ids)))
        await conn.execute(delete(schema.webhook_deliveries).where(d.endpoint_id == endpoint_id))
        await conn.execute(delete(schema.webhook_endpoints).where(e.endpoint_id == endpoint_id))
    return True


async def list_deliveries(engine: AsyncEngine, endpoint_id: str, limit: int) -> list[Delivery]:
    """The endpoint's newest deliveries with their attempts; the caller checks the tenant."""
    d = schema.webhook_deliveries.c
    a = schema.webhook_attempts.c
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(schema.webhook_deliveries)
                .where(d.endpoint_id == endpoint_id)
                .order_by(d.create_time.desc(), d.delivery_id.desc())
                .limit(limit)
            )
        ).all()
        ids = [r.delivery_id for r in rows]
        attempts: dict[str, list[Attempt]] = {i: [] for i in ids}
        if ids:
            for r in (
                await conn.execute(
                    select(schema.webhook_attempts).where(a.delivery_id.in_(ids)).order_by(a.attempt_id)
                )
            ).all():
                attempts[r.delivery_id].append(Attempt(r.attempt_time, r.http_status, r.error, r.duration_ms))
    return [
        Delivery(
            delivery_id=r.delivery_id,
            endpoint_id=r.endpoint_id,
            event_type=r.event_type,
            call_id=r.call_id,
            state=r.state,
            create_time=r.create_time,
            next_attempt_time=r.next_attempt_time if r.state == PENDING else None,
            attempts=attempts[r.delivery_id],
        )
        for r in rows
    ]


# --- the worker's side -----------------------------------------------------------------


async def claim(engine: AsyncEngine, owner: str, limit: int, lease_s: float) -> list[Claimed]:
    """Take up to `limit` due deliveries of enabled endpoints, leasing them to `owner`."""
    now = convert.now_utc()
    d = schema.webhook_deliveries.c
    e = schema.webhook_endpoints.c
    due = (
        select(d.delivery_id)
        .join(schema.webhook_endpoints, e.endpoint_id == d.endpoint_id)
        .where(d.state == PENDING, d.next_attempt_time <= now, e.enabled.is_(True))
        .order_by(d.next_attempt_time)
        .limit(limit)
        # PostgreSQL: rows another instance is claiming right now are skipped,
        # not waited for. SQLite ignores this; BEGIN IMMEDIATE serialises claims.
        .with_for_update(skip_locked=True, of=schema.webhook_deliveries)
    )
    async with write_transaction(engine) as conn:
        ids = list((await conn.execute(due)).scalars())
        if not ids:
            return []
        await conn.execute(
            update(schema.webhook_deliveries)
            .where(d.delivery_id.in_(ids))
            .values(next_attempt_time=now + timedelta(seconds=lease_s), lease_owner=owner)
        )
        rows = (
            await conn.execute(
                select(
                    d.delivery_id,
                    d.tenant_id,
                    d.endpoint_id,
                    e.url,
                    e.secret,
                    d.payload,
                    d.attempts,
                    d.create_time,
                )
                .join(schema.webhook_endpoints, e.endpoint_id == d.endpoint_id)
                .where(d.delivery_id.in_(ids))
            )
        ).all()
    return [Claimed(*r) for r in rows]


def retry_delay(attempts: int, s: WebhookSettings) -> float:
    """Seconds before the next attempt after `attempts` failures: full jitter."""
    bound = min(s.retry_cap_s, s.retry_base_s * 2 ** min(attempts - 1, 60))
    return random.uniform(0.0, bound)


async def record_attempt(
    engine: AsyncEngine, claimed: Claimed, owner: str, attempt: Attempt, ok: bool, s: WebhookSettings
) -> None:
    """Log an attempt and settle the delivery: delivered, retried later or failed.

    The delivery row changes only while `owner` still holds its lease, so a
    worker that overran its lease cannot undo what the next holder recorded.
    Nothing is recorded for a delivery whose endpoint was deleted meanwhile.
    """
    d = schema.webhook_deliveries.c
    e = schema.webhook_endpoints.c
    now = convert.now_utc()
    attempts = claimed.attempts + 1
    mine = (d.delivery_id == claimed.delivery_id, d.lease_owner == owner, d.state == PENDING)
    async with write_transaction(engine) as conn:
        exists = (
            await conn.execute(select(d.delivery_id).where(d.delivery_id == claimed.delivery_id))
        ).first()
        if exists is None:
            return
        await conn.execute(
            schema.webhook_attempts.insert().values(
                tenant_id=claimed.tenant_id,
                delivery_id=claimed.delivery_id,
                attempt_time=attempt.time,
                http_status=attempt.http_status,
                error=attempt.error[:2000],
                duration_ms=attempt.duration_ms,
            )
        )
        if ok:
            await conn.execute(
                update(schema.webhook_deliveries)
                .where(*mine)
                .values(
                    state=DELIVERED,
                    attempts=attempts,
                    delivered_time=now,
                    next_attempt_time=None,
                    lease_owner="",
                    last_error="",
                )
            )
            await conn.execute(
                update(schema.webhook_endpoints)
                .where(e.endpoint_id == claimed.endpoint_id)
                .values(failing_since=None)
            )
            return
        since = (
            await conn.execute(select(e.failing_since).where(e.endpoint_id == claimed.endpoint_id))
        ).scalar_one_or_none() or now
        give_up = timedelta(days=s.disable_after_days)
        # A delivery that has failed since it was created `give_up` ago is itself that much
        # continuous failure: the endpoint is disabled then too, however late the attempts ran.
        failed = now - claimed.create_time >= give_up
        if now - since >= give_up or failed:
            days = f"{s.disable_after_days:g}"
            await conn.execute(
                update(schema.webhook_endpoints)
                .where(e.endpoint_id == claimed.endpoint_id)
                .values(
                    enabled=False,
                    disabled_reason=f"every delivery failed for {days} days; last error: {attempt.error[:300]}",
                )
            )
        else:
            await conn.execute(
                update(schema.webhook_endpoints)
                .where(e.endpoint_id == claimed.endpoint_id, e.failing_since.is_(None))
                .values(failing_since=now)
            )
        await conn.execute(
            update(schema.webhook_deliveries)
            .where(*mine)
            .values(
                state=FAILED if failed else PENDING,
                attempts=attempts,
                next_attempt_time=None if failed else now + timedelta(seconds=retry_delay(attempts, s)),
                lease_owner="",
                last_error=attempt.error[:2000],
            )
        )


async def prune(engine: AsyncEngine, older_than: datetime, limit: int = 1000) -> int:
    """Delete up to `limit` settled (delivered or failed) deliveries created before `older_than`.

    Pending ones are never pruned. Returns how many were deleted; call again
    while it returns `limit`.
    """
    d = schema.webhook_deliveries.c
    a = schema.webhook_attempts.c
    async with write_transaction(engine) as conn:
        ids = list(
            (
                await conn.execute(
                    select(d.delivery_id)
                    .where(d.state.in_((DELIVERED, FAILED)), d.create_time < older_than)
                    .limit(limit)
                )
            ).scalars()
        )
        if ids:
            await conn.execute(delete(schema.webhook_attempts).where(a.delivery_id.in_(ids)))
            await conn.execute(delete(schema.webhook_deliveries).where(d.delivery_id.in_(ids)))
    return len(ids)
