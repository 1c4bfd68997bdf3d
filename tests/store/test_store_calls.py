"""Call records: create, get, update and keyset pagination."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from callpilot.server.errors import AlreadyExists, InvalidArgument, NotFound
from callpilot.server.store import Store
from callpilot.v1 import call_pb2, common_pb2
from google.protobuf.timestamp_pb2 import Timestamp

BASE = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def ts(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value)
    return out


def make_call(
    call_id: str, created: datetime, state: call_pb2.CallState.ValueType = call_pb2.CALL_STATE_ACTIVE
) -> call_pb2.Call:
    return call_pb2.Call(
        call_id=call_id,
        state=state,
        create_time=ts(created),
        config=call_pb2.CallConfig(
            call_id=call_id,
            customer_hint=call_pb2.CustomerHint(phone="+15550100101"),
            audio=call_pb2.AudioConfig(
                encoding=common_pb2.AUDIO_ENCODING_MULAW, sample_rate_hertz=8000, channel_count=1
            ),
            language_code="en-US",
            phrase_hints=["Wireless Headphones"],
            labels={"queue": "support", "campaign": "fall"},
        ),
    )


async def test_create_and_get_round_trip(empty_store: Store) -> None:
    call = make_call("call-1", BASE)
    await empty_store.create_call(call)
    got = await empty_store.get_call("call-1")
    assert got is not None
    expected = call_pb2.Call()
    expected.CopyFrom(call)
    expected.tenant_id = empty_store.tenant_id
    assert got == expected
    assert await empty_store.get_call("nope") is None


async def test_create_defaults_create_time_to_now(empty_store: Store) -> None:
    before = datetime.now(UTC)
    await empty_store.create_call(call_pb2.Call(call_id="c-now", state=call_pb2.CALL_STATE_ACTIVE))
    got = await empty_store.get_call("c-now")
    assert got is not None
    assert before - timedelta(seconds=1) <= got.create_time.ToDatetime(tzinfo=UTC) <= datetime.now(UTC)
    assert not got.HasField("end_time")


async def test_duplicate_call_id_is_rejected(empty_store: Store) -> None:
    await empty_store.create_call(make_call("dup", BASE))
    with pytest.raises(AlreadyExists, match='call "dup" already exists'):
        await empty_store.create_call(make_call("dup", BASE + timedelta(minutes=1)))
    got = await empty_store.get_call("dup")
    assert got is not None and got.create_time == ts(BASE)


async def test_create_call_validation(empty_store: Store) -> None:
    with pytest.raises(InvalidArgument, match=r"call\.call_id"):
        await empty_store.create_call(call_pb2.Call())
    with pytest.raises(InvalidArgument, match="tenant"):
        await empty_store.create_call(call_pb2.Call(call_id="x", tenant_id="someone-else"))


async def test_update_call(empty_store: Store) -> None:
    await empty_store.create_call(make_call("upd", BASE))
    call = await empty_store.get_call("upd")
    assert call is not None
    call.state = call_pb2.CALL_STATE_ENDED
    call.customer_id = "C-1001"
    call.end_time.CopyFrom(ts(BASE + timedelta(minutes=7)))
    call.end_reason = call_pb2.CALL_END_REASON_END_CALL_RPC
    call.summary = "Customer asked about a refund for order 78901."
    call.config.labels["crm_case"] = "42"
    call.last_sequence = 999  # owned by the event log, ignored here
    await empty_store.update_call(call)
    got = await empty_store.get_call("upd")
    assert got is not None
    assert got.state == call_pb2.CALL_STATE_ENDED
    assert got.customer_id == "C-1001"
    assert got.end_time == ts(BASE + timedelta(minutes=7))
    assert got.end_reason == call_pb2.CALL_END_REASON_END_CALL_RPC
    assert got.summary.startswith("Customer asked")
    assert got.config.labels["crm_case"] == "42"
    assert got.last_sequence == 0
    assert got.create_time == ts(BASE)
    with pytest.raises(NotFound, match='call "ghost" not found'):
        await empty_store.update_call(call_pb2.Call(call_id="ghost"))


async def _all_pages(
    store: Store, page_size: int, state: call_pb2.CallState.ValueType = call_pb2.CALL_STATE_UNSPECIFIED
) -> list[str]:
    ids: list[str] = []
    token = ""
    for _ in range(100):
        page, token = await store.list_calls(page_size=page_size, page_token=token, state=state)
        assert len(page) <= page_size
        ids.extend(c.call_id for c in page)
        if not token:
            return ids
    raise AssertionError("pagination did not terminate")


async def test_list_calls_pages_without_gaps_or_duplicates(empty_store: Store) -> None:
    expected: list[tuple[datetime, str]] = []
    for i in range(23):
        # Groups of three share a create_time, so the call_id tie-breaker matters.
        created = BASE + timedelta(seconds=i // 3, microseconds=0)
        state = call_pb2.CALL_STATE_ENDED if i % 4 == 0 else call_pb2.CALL_STATE_ACTIVE
        call_id = f"call-{i:02d}"
        await empty_store.create_call(make_call(call_id, created, state))
        expected.append((created, call_id))
    newest_first = [cid for _, cid in sorted(expected, reverse=True)]
    for size in (1, 5, 7, 23, 50):
        assert await _all_pages(empty_store, size) == newest_first, size
    ended = await _all_pages(empty_store, 2, call_pb2.CALL_STATE_ENDED)
    assert ended == [cid for cid in newest_first if int(cid[-2:]) % 4 == 0]
    active = await _all_pages(empty_store, 4, call_pb2.CALL_STATE_ACTIVE)
    assert sorted(active + ended) == sorted(newest_first)
    # 0 means the default page size.
    page, token = await empty_store.list_calls(
        page_size=0, page_token="", state=call_pb2.CALL_STATE_UNSPECIFIED
    )
    assert len(page) == 20 and token


async def test_list_calls_is_stable_when_calls_arrive_between_pages(empty_store: Store) -> None:
    for i in range(6):
        await empty_store.create_call(make_call(f"old-{i}", BASE + timedelta(seconds=i)))
    first, token = await empty_store.list_calls(
        page_size=3, page_token="", state=call_pb2.CALL_STATE_UNSPECIFIED
    )
    await empty_store.create_call(make_call("newer", BASE + timedelta(hours=1)))
    second, token = await empty_store.list_calls(
        page_size=3, page_token=token, state=call_pb2.CALL_STATE_UNSPECIFIED
    )
    assert [c.call_id for c in first + second] == [f"old-{i}" for i in range(5, -1, -1)]
    assert token == ""


async def test_list_calls_rejects_foreign_tokens(empty_store: Store) -> None:
    for bad in ("garbage", "e30", "W10", "!!!"):
        with pytest.raises(InvalidArgument, match="page_token"):
            await empty_store.list_calls(page_size=5, page_token=bad, state=call_pb2.CALL_STATE_UNSPECIFIED)


async def test_list_calls_empty(empty_store: Store) -> None:
    assert await empty_store.list_calls(
        page_size=10, page_token="", state=call_pb2.CALL_STATE_UNSPECIFIED
    ) == (
        [],
        "",
    )
