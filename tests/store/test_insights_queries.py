"""Insights over a seeded set of stored calls, on SQLite and PostgreSQL, checked
against an independent computation (tests/insights/seed.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from callpilot.server.errors import InvalidArgument
from callpilot.server.store import Store
from insights.seed import HOUR, START, as_plain, expected, make_specs, seed_calls

from .conftest import OpenStore


async def test_figures_match_an_independent_computation(empty_store: Store, open_store: OpenStore) -> None:
    specs = make_specs()
    await seed_calls(empty_store, specs)
    # Another tenant's calls never count.
    await seed_calls(await open_store(tenant_id=empty_store.tenant_id + "-other"), make_specs(5, seed=3))

    end = START + 3 * HOUR
    response = await empty_store.insights(START, end, HOUR)
    assert as_plain(response.total) == expected(specs, START, end)
    assert len(response.buckets) == 3
    for i, bucket in enumerate(response.buckets):
        lo, hi = START + i * HOUR, START + (i + 1) * HOUR
        assert bucket.start_time.ToDatetime().replace(tzinfo=lo.tzinfo) == lo
        assert as_plain(bucket.figures) == expected(specs, lo, hi), f"bucket {i}"
    assert sum(b.figures.calls for b in response.buckets) == response.total.calls == len(specs)

    # A window that cuts the set: only calls created inside it, start inclusive.
    lo, hi = START + timedelta(minutes=30), START + timedelta(minutes=100)
    assert as_plain((await empty_store.insights(lo, hi)).total) == expected(specs, lo, hi)


async def test_an_empty_range_has_empty_buckets(empty_store: Store) -> None:
    response = await empty_store.insights(START, START + 2 * HOUR, HOUR)
    assert response.total.calls == 0 and not response.total.HasField("handle_time_p50")
    assert [b.figures.calls for b in response.buckets] == [0, 0]
    assert response.buckets[-1].end_time.ToDatetime().hour == (START + 2 * HOUR).hour


@pytest.mark.parametrize(
    ("end", "bucket", "field"),
    [
        (START, None, "end_time"),
        (START + timedelta(days=400), None, "end_time"),
        (START + HOUR, timedelta(seconds=10), "bucket"),
        (START + timedelta(days=30), timedelta(minutes=1), "bucket"),
    ],
)
async def test_ranges_it_refuses_name_the_field(
    empty_store: Store, end: object, bucket: timedelta | None, field: str
) -> None:
    with pytest.raises(InvalidArgument) as err:
        await empty_store.insights(START, end, bucket)  # type: ignore[arg-type]
    assert [v.field for v in err.value.violations] == [field]
