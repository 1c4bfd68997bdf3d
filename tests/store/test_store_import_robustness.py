"""Importing hostile or big files: nesting, repeated keys, every problem named, live calls not stalled."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from callpilot.server.store import DataImportError, Store, importer
from callpilot.server.store.importer import MAX_DEPTH, MAX_VIOLATIONS, parse_json
from callpilot.v1 import call_pb2, events_pb2


def _customers(n: int, prefix: str = "C") -> list[dict[str, Any]]:
    return [{"id": f"{prefix}-{i}", "name": f"Customer {i}", "phone": f"+1555{i:07d}"} for i in range(n)]


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_deeply_nested_json_is_a_clear_error(opener: str) -> None:
    text = opener * 200_000
    with pytest.raises(DataImportError) as info:
        parse_json(text)
    assert str(info.value).startswith(f"(document): nests lists and objects more than {MAX_DEPTH} deep")


def test_nesting_inside_strings_does_not_count() -> None:
    doc = parse_json(json.dumps({"articles": [{"id": "KB-1", "title": "[" * 500, "body": "{" * 500}]}))
    assert isinstance(doc, dict)


async def test_import_of_deeply_nested_text_is_rejected(empty_store: Store) -> None:
    with pytest.raises(DataImportError, match="nests lists and objects"):
        await empty_store.import_data('{"customers": ' + "[" * 100_000 + "]" * 100_000 + "}")


def test_repeated_top_level_key_is_named() -> None:
    text = '{"customers": [{"id": "C-1", "name": "A"}], "customers": []}'
    with pytest.raises(DataImportError) as info:
        parse_json(text)
    assert [(v.field, v.description) for v in info.value.violations] == [
        ("(document)", 'repeats the key "customers" in one object; each key may appear once')
    ]


def test_repeated_key_in_a_record_is_named_too() -> None:
    text = '{"customers": [{"id": "C-1", "name": "A", "name": "B", "id": "C-2"}]}'
    with pytest.raises(DataImportError) as info:
        parse_json(text)
    assert ['"name"' in v.description for v in info.value.violations] == [True, False]
    assert ['"id"' in v.description for v in info.value.violations] == [False, True]


def test_problems_stop_at_the_limit_and_say_so() -> None:
    doc = {"customers": [{"id": f"bad id {i}", "name": "X"} for i in range(MAX_VIOLATIONS + 20)]}
    with pytest.raises(DataImportError) as info:
        importer.validate_document(doc)
    lines = info.value.lines()
    assert len(info.value.violations) == MAX_VIOLATIONS
    assert lines[0].startswith("customers[0].id: ")
    assert lines[-1].startswith(f"(stopped after {MAX_VIOLATIONS} problems")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_live_call_writes_while_a_large_sqlite_import_runs(
    empty_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live call's event goes in between the import's batches, not after the whole import."""
    monkeypatch.setattr("callpilot.server.store.loading.BATCH_RECORDS", 200)
    await empty_store.create_call(call_pb2.Call(call_id="live", state=call_pb2.CALL_STATE_ACTIVE))
    doc = {"customers": _customers(6_000)}  # 30 batches
    imported = asyncio.create_task(empty_store.import_data(doc))
    async with asyncio.timeout(60):
        # Wait until the import has committed its first batch: it is under way.
        while not await empty_store.get_customer("C-0"):
            assert not imported.done(), "the import finished before it was seen in progress"
            await asyncio.sleep(0.002)
        await empty_store.append_event(
            events_pb2.CallEvent(
                call_id="live", sequence=1, durable=True, call_ended=events_pb2.CallEnded(summary="done")
            )
        )
        assert not imported.done(), "the event write waited for the whole import"
        report = await imported
    assert report.customers == 6_000 and report.created == 6_000
    assert [e.sequence for e in await empty_store.read_events("live", 1)] == [1]
    assert await empty_store.get_customer("C-5999") is not None


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_batched_import_that_fails_leaves_nothing_behind(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All or nothing holds for batches: created rows go, replaced rows come back."""
    monkeypatch.setattr("callpilot.server.store.loading.BATCH_RECORDS", 50)
    before_maria = await store.get_customer("C-1001")
    before_order = await store.get_order("78901")
    assert before_maria is not None and before_order is not None
    calls = 0
    real = importer.write_document

    async def fail_after_last_batch(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        report = await real(*args, **kwargs)
        if calls == 5:  # 201 customers and an order in batches of 50
            raise RuntimeError("disk full")
        return report

    monkeypatch.setattr("callpilot.server.store.loading.write_document", fail_after_last_batch)
    order = {
        "number": "78901",
        "customer_id": "C-1001",
        "status": "lost",
        "total": "1.00",
        "currency": "USD",
        "order_date": "2026-01-01",
        "items": [{"sku": "X", "name": "X", "quantity": 1, "unit_price": "1.00"}],
    }
    doc = {
        "customers": [{"id": "C-1001", "name": "Not Maria"}, *_customers(200, "NEW")],
        "orders": [order],
    }
    with pytest.raises(RuntimeError, match="disk full"):
        await store.import_data(doc)
    assert calls == 5
    assert await store.get_customer("C-1001") == before_maria
    assert await store.get_customer("NEW-0") is None
    assert await store.get_order("78901") == before_order
    assert await store.get_customer("NEW-199") is None
