"""Group commit of durable events: many calls share a transaction, never an outcome.

Appends of many calls issued at the same moment are written in shared
transactions (fewer transactions than events), every derived row is there
afterwards, and one bad event in a batch fails alone with the exact error
it has when written alone, while its neighbours are stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from callpilot.server import metrics
from callpilot.server.errors import AlreadyExists, NotFound
from callpilot.server.store import Store, schema
from callpilot.server.webhooks import outbox
from callpilot.v1 import call_pb2, events_pb2
from sqlalchemy import select
from store.test_store_events import final, suggestion, tool_call, ts

CALLS = 12


def _for(call_id: str, event: events_pb2.CallEvent) -> events_pb2.CallEvent:
    event.call_id = call_id
    return event


def _context(seq: int, customer_id: str) -> events_pb2.CallEvent:
    update = events_pb2.ContextUpdate()
    update.customer.customer_id = customer_id
    return events_pb2.CallEvent(sequence=seq, time=ts(seq), durable=True, context=update)


def _batch_counts() -> tuple[float, float]:
    """(transactions, events) observed by the group committer so far."""
    count = sum_ = 0.0
    for metric in metrics.EVENT_COMMIT_BATCH.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count"):
                count = sample.value
            elif sample.name.endswith("_sum"):
                sum_ = sample.value
    return count, sum_


@pytest.fixture
async def calls(store: Store) -> list[str]:
    ids = [f"gc-{n}" for n in range(CALLS)]
    for call_id in ids:
        await store.create_call(
            call_pb2.Call(call_id=call_id, state=call_pb2.CALL_STATE_ACTIVE, create_time=ts(0))
        )
    return ids


async def test_concurrent_appends_share_transactions_and_keep_every_derived_row(
    store: Store, calls: list[str]
) -> None:
    customer = "C-1013"  # in the demo data
    tx0, ev0 = _batch_counts()
    rounds: list[Callable[[str], events_pb2.CallEvent]] = [
        lambda c: final(1, f"seg-{c}", f"Order for {c}"),
        lambda c: _context(2, customer),
        lambda c: tool_call(3, f"tool-{c}"),
        lambda c: suggestion(4, f"sug-{c}", f"Say sorry to {c}."),
        lambda c: suggestion(5, f"sug2-{c}", "Offer a refund.", supersedes=f"sug-{c}"),
    ]
    for make in rounds:
        await asyncio.gather(*(store.append_event(_for(c, make(c))) for c in calls))
    tx1, ev1 = _batch_counts()
    assert ev1 - ev0 == CALLS * len(rounds)
    assert tx1 - tx0 < ev1 - ev0  # batches formed
    for call_id in calls:
        assert [e.sequence for e in await store.read_events(call_id, 1)] == [1, 2, 3, 4, 5]
        got = await store.get_call(call_id)
        assert got is not None and got.last_sequence == 5 and got.customer_id == customer
        assert [s.text for s in await store.get_transcript(call_id)] == [f"Order for {call_id}"]
        assert [t.tool_call_id for t in await store.get_tool_calls(call_id)] == [f"tool-{call_id}"]
        suggestions = await store.get_suggestions(call_id)
        assert [(s.suggestion.suggestion_id, s.superseded) for s in suggestions] == [
            (f"sug-{call_id}", True),
            (f"sug2-{call_id}", False),
        ]
        context = await store.latest_context(call_id)
        assert context is not None and context.customer.customer_id == customer


async def test_a_bad_event_in_a_batch_fails_alone_with_its_own_error(store: Store, calls: list[str]) -> None:
    await asyncio.gather(*(store.append_event(_for(c, final(1, f"seg-{c}", "hi"))) for c in calls))
    good = [store.append_event(_for(c, final(2, f"seg2-{c}", "again"))) for c in calls[1:]]
    duplicate = store.append_event(_for(calls[0], final(1, "seg-dup", "again")))
    unknown = store.append_event(_for("no-such-call", final(1, "seg-x", "hello")))
    results = await asyncio.gather(duplicate, unknown, *good, return_exceptions=True)
    assert isinstance(results[0], AlreadyExists)
    assert isinstance(results[1], NotFound)
    assert results[2:] == [None] * (CALLS - 1)
    assert [e.sequence for e in await store.read_events(calls[0], 1)] == [1]
    for call_id in calls[1:]:
        assert [e.sequence for e in await store.read_events(call_id, 1)] == [1, 2]
        assert len(await store.get_transcript(call_id)) == 2


async def test_webhook_outbox_rows_commit_with_their_batched_events(store: Store, calls: list[str]) -> None:
    await outbox.create_endpoint(
        store.engine, store.tenant_id, "http://127.0.0.1:9/hook", ["call.started"], "test", "secret"
    )
    started = [
        events_pb2.CallEvent(
            call_id=c, sequence=1, time=ts(1), durable=True, call_started=events_pb2.CallStarted()
        )
        for c in calls
    ]
    await asyncio.gather(*(store.append_event(e) for e in started))
    d = schema.webhook_deliveries.c
    async with store.reading() as conn:
        rows = (
            await conn.execute(
                select(d.call_id, d.event_type).where(d.tenant_id == store.tenant_id).order_by(d.call_id)
            )
        ).all()
    assert sorted((r.call_id, r.event_type) for r in rows) == sorted((c, "call.started") for c in calls)
