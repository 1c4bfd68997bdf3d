"""Signed webhooks arrive exactly once per id after refused connections, 500s and timeouts.

Real parts only: a real Store (SQLite file and PostgreSQL), the real delivery
worker, and an aiohttp receiver on 127.0.0.1 that verifies every request
with the standardwebhooks library.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from callpilot.server.store import Store, convert
from callpilot.server.webhooks import outbox, payloads
from callpilot.server.webhooks.settings import WebhookSettings
from callpilot.server.webhooks.signing import new_secret
from callpilot.server.webhooks.worker import WebhookWorker
from callpilot.v1 import assist_service_pb2, call_pb2, directory_pb2, events_pb2
from google.protobuf.struct_pb2 import Struct
from support import free_port
from webhooks.receiver import Receiver, fail_500_then_hang

FAST = WebhookSettings(timeout_s=0.5, retry_base_s=0.05, retry_cap_s=0.2, poll_s=0.05)
CALL = "call-wh-1"


def _event(seq: int, **payload: Any) -> events_pb2.CallEvent:
    event = events_pb2.CallEvent(call_id=CALL, sequence=seq, durable=True, **payload)
    event.time.CopyFrom(convert.to_timestamp(convert.now_utc()))
    return event


async def _run_call(store: Store) -> None:
    """One call raising each webhook type once, plus events that raise none."""
    await store.create_call(call_pb2.Call(call_id=CALL, state=call_pb2.CALL_STATE_ACTIVE))
    await store.append_event(
        _event(1, call_started=events_pb2.CallStarted(call=call_pb2.Call(call_id=CALL, customer_id="C-1001")))
    )
    customer = directory_pb2.Customer(customer_id="C-1001", name="Maria Lopez")
    await store.append_event(
        _event(2, context=events_pb2.ContextUpdate(customer=customer, topics=[events_pb2.TOPIC_REFUND]))
    )
    args = Struct()
    args.update({"order_number": "78901"})
    proposed = events_pb2.ToolCall(
        tool_call_id="t1",
        tool_name="create_ticket",
        arguments=args,
        status=events_pb2.TOOL_CALL_STATUS_PENDING_CONFIRMATION,
    )
    await store.append_event(_event(3, tool_call=proposed))
    decided = events_pb2.ToolCall()
    decided.CopyFrom(proposed)
    decided.status = events_pb2.TOOL_CALL_STATUS_SUCCEEDED
    decided.decision.CopyFrom(
        events_pb2.ToolDecision(tool_call_id="t1", kind=events_pb2.TOOL_DECISION_KIND_CONFIRM)
    )
    await store.append_event(_event(4, tool_call=decided))
    await store.append_event(
        _event(
            5, suggestion_completed=events_pb2.SuggestionCompleted(suggestion_id="s1", text="Offer a refund.")
        )
    )
    await store.record_feedback(
        CALL,
        assist_service_pb2.SuggestionFeedback(suggestion_id="s1", kind=assist_service_pb2.FEEDBACK_KIND_USED),
    )
    await store.append_event(
        _event(
            6,
            call_ended=events_pb2.CallEnded(
                reason=call_pb2.CALL_END_REASON_CLIENT_ENDED, summary="Refund offered for order 78901."
            ),
        )
    )


async def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_every_event_arrives_signed_once_after_refused_500_and_timeout(store: Store) -> None:
    secret = new_secret()
    receiver = Receiver(secret, port=free_port(), plan=fail_500_then_hang, hang_s=1.5)
    endpoint = await outbox.create_endpoint(
        store.engine, store.tenant_id, receiver.url, payloads.EVENT_TYPES, "CRM", secret
    )
    worker = WebhookWorker(store.engine, FAST)
    worker.start()
    try:
        await _run_call(store)

        async def all_refused_once() -> bool:
            ds = await outbox.list_deliveries(store.engine, endpoint.endpoint_id, 50)
            return len(ds) == 4 and all(d.attempts for d in ds)

        # The receiver is not listening yet: every first attempt is refused.
        await _wait(all_refused_once, 30, "a refused first attempt of each delivery")
        await receiver.start()
        await receiver.wait_for(4, timeout=60)

        async def all_settled() -> bool:
            ds = await outbox.list_deliveries(store.engine, endpoint.endpoint_id, 50)
            return all(d.state == outbox.DELIVERED for d in ds)

        await _wait(all_settled, 30, "every delivery marked delivered")
    finally:
        await worker.stop()
        await receiver.stop()

    assert receiver.bad_signatures == 0
    assert receiver.types() == sorted(payloads.EVENT_TYPES)
    # Exactly once per id, and one id per event: no event was queued twice.
    assert set(receiver.accepted.values()) == {1}, receiver.dump()
    # Every id came back after its 500 and its timeout: the same id across retries.
    assert set(receiver.requests.values()) == {3}, receiver.dump()

    deliveries = await outbox.list_deliveries(store.engine, endpoint.endpoint_id, 50)
    assert {d.delivery_id for d in deliveries} == set(receiver.messages)
    for d in deliveries:
        statuses = [a.http_status for a in d.attempts]
        refused = statuses[: len(statuses) - 3]
        assert refused and set(refused) == {0}, d.attempts
        assert all("Connect" in a.error or "connect" in a.error for a in d.attempts[: len(refused)])
        assert statuses[-3:] == [500, 0, 204], d.attempts
        assert "no answer within" in d.attempts[-2].error
        assert d.next_attempt_time is None

    by_type = {m["type"]: m["data"] for m in receiver.messages.values()}
    ended = by_type["call.ended"]
    assert ended["call_id"] == CALL
    assert ended["summary"] == "Refund offered for order 78901."
    assert ended["reason"] == "CALL_END_REASON_CLIENT_ENDED"
    assert ended["customer"]["customer_id"] == "C-1001"
    assert ended["topics"] == ["TOPIC_REFUND"]
    assert [t["tool_name"] for t in ended["tool_calls"]] == ["create_ticket"]
    assert ended["tool_calls"][0]["status"] == "TOOL_CALL_STATUS_SUCCEEDED"
    assert ended["suggestions_used"] == [{"suggestion_id": "s1", "text": "Offer a refund."}]
    assert ended["handle_time_seconds"] >= 0
    assert CALL in ended["transcript_url"]
    assert by_type["tool.decided"]["tool_call"]["decision"]["kind"] == "TOOL_DECISION_KIND_CONFIRM"
    assert by_type["suggestion.feedback"]["feedback"]["kind"] == "FEEDBACK_KIND_USED"
    assert by_type["call.started"]["call"]["customer_id"] == "C-1001"


async def test_only_subscribed_types_are_queued_and_other_tenants_see_nothing(store: Store) -> None:
    ended_only = await outbox.create_endpoint(
        store.engine, store.tenant_id, "http://127.0.0.1:9/x", ["call.ended"], "", new_secret()
    )
    other = store.for_tenant("someone-else")
    await outbox.create_endpoint(
        other.engine, "someone-else", "http://127.0.0.1:9/y", ["call.ended"], "", new_secret()
    )
    await _run_call(store)
    deliveries = await outbox.list_deliveries(store.engine, ended_only.endpoint_id, 50)
    assert [d.event_type for d in deliveries] == ["call.ended"]
    assert [e.endpoint_id for e in await outbox.list_endpoints(store.engine, store.tenant_id)] == [
        ended_only.endpoint_id
    ]


async def test_claims_never_overlap_and_a_dead_workers_lease_expires(db_url: str) -> None:
    """Two instances (two connection pools) claiming at once never take the same row."""
    a_store = await Store.open(db_url, tenant_id="lease")
    b_store = await Store.open(db_url, tenant_id="lease")
    try:
        endpoint = await outbox.create_endpoint(
            a_store.engine, "lease", "http://127.0.0.1:9/x", ["suggestion.feedback"], "", new_secret()
        )
        await a_store.create_call(call_pb2.Call(call_id=CALL))
        await a_store.append_event(
            _event(1, suggestion_completed=events_pb2.SuggestionCompleted(suggestion_id="s1", text="Hi"))
        )
        for _ in range(40):
            await a_store.record_feedback(
                CALL,
                assist_service_pb2.SuggestionFeedback(
                    suggestion_id="s1", kind=assist_service_pb2.FEEDBACK_KIND_RATED, rating=4
                ),
            )

        async def drain(engine: Any, owner: str) -> list[str]:
            got: list[str] = []
            while batch := await outbox.claim(engine, owner, 3, lease_s=1.0):
                got.extend(c.delivery_id for c in batch)
                await asyncio.sleep(0)
            return got

        a_ids, b_ids = await asyncio.gather(drain(a_store.engine, "A"), drain(b_store.engine, "B"))
        assert not set(a_ids) & set(b_ids)
        assert len(a_ids) + len(b_ids) == 40 == len(set(a_ids) | set(b_ids))
        # Leased rows are nobody else's until the lease ends...
        assert await outbox.claim(b_store.engine, "C", 100, lease_s=1.0) == []
        await asyncio.sleep(1.1)
        # ...then a worker that died holding them has lost them.
        reclaimed = await outbox.claim(b_store.engine, "C", 100, lease_s=30.0)
        assert len(reclaimed) == 40
        # The dead worker coming back late cannot settle a row it no longer holds.
        first = reclaimed[0]
        ok = outbox.Attempt(convert.now_utc(), 204, "", 5)
        await outbox.record_attempt(a_store.engine, first, "A", ok, True, FAST)
        [row] = [
            d
            for d in await outbox.list_deliveries(a_store.engine, endpoint.endpoint_id, 100)
            if d.delivery_id == first.delivery_id
        ]
        assert row.state == outbox.PENDING
        await outbox.record_attempt(b_store.engine, first, "C", ok, True, FAST)
        [row] = [
            d
            for d in await outbox.list_deliveries(a_store.engine, endpoint.endpoint_id, 100)
            if d.delivery_id == first.delivery_id
        ]
        assert row.state == outbox.DELIVERED
        assert len(row.attempts) == 2
    finally:
        await a_store.close()
        await b_store.close()


async def test_an_endpoint_failing_longer_than_the_limit_is_disabled(store: Store) -> None:
    one_second = WebhookSettings(
        timeout_s=0.5, retry_base_s=0.01, retry_cap_s=0.05, poll_s=0.05, disable_after_days=1 / 86400
    )
    endpoint = await outbox.create_endpoint(
        store.engine,
        store.tenant_id,
        f"http://127.0.0.1:{free_port()}/gone",
        ["call.ended"],
        "",
        new_secret(),
    )
    await _run_call(store)
    worker = WebhookWorker(store.engine, one_second)
    try:

        async def disabled() -> bool:
            await worker.run_once()
            found = await outbox.get_endpoint(store.engine, store.tenant_id, endpoint.endpoint_id)
            return found is not None and not found.enabled

        await _wait(disabled, 30, "the endpoint to be disabled")
    finally:
        await worker.stop()
    found = await outbox.get_endpoint(store.engine, store.tenant_id, endpoint.endpoint_id)
    assert found is not None and "failed for" in found.disabled_reason
    [delivery] = await outbox.list_deliveries(store.engine, endpoint.endpoint_id, 10)
    assert delivery.state == outbox.FAILED
    assert len(delivery.attempts) >= 2
    # A disabled endpoint's deliveries are not claimed.
    assert await outbox.claim(store.engine, "X", 10, 30.0) == []


async def test_a_delivery_first_tried_after_the_limit_disables_its_endpoint(store: Store) -> None:
    """Failing since its creation for the whole limit is continuous failure, however late the try."""
    one_second = WebhookSettings(
        timeout_s=0.5, retry_base_s=0.01, retry_cap_s=0.05, poll_s=0.05, disable_after_days=1 / 86400
    )
    endpoint = await outbox.create_endpoint(
        store.engine,
        store.tenant_id,
        f"http://127.0.0.1:{free_port()}/gone",
        ["call.ended"],
        "",
        new_secret(),
    )
    await _run_call(store)
    await asyncio.sleep(1.2)  # the worker was busy (or down) longer than the limit
    worker = WebhookWorker(store.engine, one_second)
    try:
        await worker.run_once()
    finally:
        await worker.stop()
    found = await outbox.get_endpoint(store.engine, store.tenant_id, endpoint.endpoint_id)
    assert found is not None and not found.enabled


def test_retry_delays_grow_exponentially_with_full_jitter_up_to_the_cap() -> None:
    s = WebhookSettings(retry_base_s=2.0, retry_cap_s=60.0)
    for attempts, bound in ((1, 2.0), (2, 4.0), (3, 8.0), (10, 60.0), (500, 60.0)):
        delays = [outbox.retry_delay(attempts, s) for _ in range(200)]
        assert all(0.0 <= d <= bound for d in delays)
        assert max(delays) > bound / 2  # spread over the range, not a fixed step


async def test_prune_deletes_only_old_settled_deliveries(store: Store) -> None:
    secret = new_secret()
    receiver = await Receiver(secret).start()
    delivered = await outbox.create_endpoint(
        store.engine, store.tenant_id, receiver.url, payloads.EVENT_TYPES, "", secret
    )
    dead = await outbox.create_endpoint(
        store.engine, store.tenant_id, f"http://127.0.0.1:{free_port()}/x", payloads.EVENT_TYPES, "", secret
    )
    worker = WebhookWorker(store.engine, FAST)
    worker.start()
    try:
        await _run_call(store)
        await receiver.wait_for(4, timeout=30)

        async def settled() -> bool:
            ds = await outbox.list_deliveries(store.engine, delivered.endpoint_id, 50)
            return all(d.state == outbox.DELIVERED for d in ds)

        await _wait(settled, 30, "deliveries to the live endpoint settled")
    finally:
        await worker.stop()
        await receiver.stop()
    now = convert.now_utc()
    assert await outbox.prune(store.engine, now - timedelta(days=1)) == 0  # too recent
    assert await outbox.prune(store.engine, now + timedelta(seconds=1)) == 4
    assert await outbox.list_deliveries(store.engine, delivered.endpoint_id, 50) == []
    pending = await outbox.list_deliveries(store.engine, dead.endpoint_id, 50)
    assert len(pending) == 4 and all(d.state == outbox.PENDING for d in pending)


async def test_an_attempt_finishing_after_its_endpoint_was_deleted_is_dropped(store: Store) -> None:
    endpoint = await outbox.create_endpoint(
        store.engine, store.tenant_id, "http://127.0.0.1:9/x", ["call.ended"], "", new_secret()
    )
    await _run_call(store)
    [claimed] = await outbox.claim(store.engine, "A", 10, 30.0)
    assert await outbox.delete_endpoint(store.engine, store.tenant_id, endpoint.endpoint_id)
    ok = outbox.Attempt(convert.now_utc(), 204, "", 3)
    await outbox.record_attempt(store.engine, claimed, "A", ok, True, FAST)
    assert await outbox.claim(store.engine, "B", 10, 30.0) == []


async def test_stopping_mid_request_records_nothing_and_leaves_the_database_writable(store: Store) -> None:
    secret = new_secret()
    slow = WebhookSettings(timeout_s=10.0, retry_base_s=0.05, retry_cap_s=0.2, poll_s=0.05)
    receiver = await Receiver(secret, plan=lambda _id, _n: "hang", hang_s=20.0).start()
    endpoint = await outbox.create_endpoint(
        store.engine, store.tenant_id, receiver.url, ["call.ended"], "", secret
    )
    worker = WebhookWorker(store.engine, slow)
    worker.start()
    try:
        await _run_call(store)

        async def asked() -> bool:
            return sum(receiver.requests.values()) >= 1

        await _wait(asked, 30, "the request to reach the receiver")
        async with asyncio.timeout(8):  # before the request's own timeout (10 s) or answer (20 s)
            await worker.stop()
    finally:
        await worker.stop()
        await receiver.stop()
    [pending] = await outbox.list_deliveries(store.engine, endpoint.endpoint_id, 50)
    # Nothing recorded: the delivery stays leased, then is sent again.
    assert pending.state == outbox.PENDING and pending.attempts == []
    assert pending.next_attempt_time is not None and pending.next_attempt_time > convert.now_utc()
    # No transaction was left holding the write lock: the next writer goes straight in.
    async with asyncio.timeout(5):
        assert await outbox.claim(store.engine, "next", 10, 30.0) == []
        assert await outbox.prune(store.engine, convert.now_utc()) == 0


async def test_stopping_while_a_transaction_waits_for_the_lock_cuts_no_transaction(store: Store) -> None:
    """The worker's round is waiting on another writer when it is stopped: it finishes, not cut."""
    writer = store.engine.execution_options(callpilot_write=True)
    worker = WebhookWorker(store.engine, FAST)
    async with writer.begin() as held:
        if store.backend == "postgresql":
            await held.exec_driver_sql("LOCK TABLE webhook_deliveries IN EXCLUSIVE MODE")
        else:
            await held.exec_driver_sql("DELETE FROM webhook_deliveries WHERE 0")
        worker.start()  # its first round prunes: it waits for the lock held here
        await asyncio.sleep(0.5)
        stopping = asyncio.create_task(worker.stop())
        await asyncio.sleep(0.5)
    async with asyncio.timeout(20):
        await stopping
    # Whatever the stop did, nothing holds the write lock now.
    async with asyncio.timeout(5):
        assert await outbox.claim(store.engine, "next", 10, 30.0) == []
        assert await outbox.prune(store.engine, convert.now_utc()) == 0
