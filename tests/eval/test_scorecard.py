"""The evaluation set as a ratchet: the local engine's scorecard on
tests/eval/calls.json must not fall below tests/eval/baseline.json, and the
LLM engine (scripted loopback model that invents figures) must never show
an ungrounded one. Scores only, no timings (those are printed by
tests/eval/scorecard.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from eval.harness import load_calls, run_llm, run_local, scorecard

BASELINE = json.loads((Path(__file__).resolve().parent / "baseline.json").read_text(encoding="utf-8"))


def test_the_set_is_big_and_varied_enough() -> None:
    calls = load_calls()
    assert len(calls) >= 30
    assert len({c["id"] for c in calls}) == len(calls)
    assert {c["company"] for c in calls} >= {"demo", "northwind"}
    assert sum(1 for c in calls if c.get("speech")) >= 5
    assert all(t["role"] in ("customer", "agent") for c in calls for t in c["turns"])


@pytest.fixture(scope="module")
def local_results() -> Any:
    # Plain data (protos, strings): safe to build on its own event loop once for the module.
    return asyncio.run(run_local(load_calls()))


async def test_local_scorecard_does_not_fall_below_the_baseline(local_results: Any) -> None:
    card = scorecard(local_results)
    got = {
        k: card[k][0] if isinstance(card[k], tuple) else card[k] for k in BASELINE if not k.startswith("_")
    }
    for key, floor in BASELINE.items():
        if key.startswith("_"):
            continue
        if key == "contradictions":
            assert got[key] <= floor, (key, got, card["failures"])
        else:
            assert got[key] >= floor, (key, got, card["failures"])


async def test_llm_figures_are_grounded_after_the_check(local_results: Any) -> None:
    card = scorecard(await run_llm(load_calls(), local_results))
    assert card["grounded_precision"] == 1.0
    assert card["draft_grounded_precision"] < 1.0, "the scripted model invents figures the check must catch"
    assert card["contradictions"] == 0
