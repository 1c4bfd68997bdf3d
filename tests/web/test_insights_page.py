"""The insights page in headless Chromium over a seeded set of stored calls:
the figures shown equal an independent computation of the seed
(tests/insights/seed.py), every chart is drawn, an empty range says so, and
axe-core finds nothing serious at 1280x800 or 390x844. Screenshots: insights-*.png
(web/screenshots.py says where).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from callpilot.server.store import Store
from insights.seed import HOUR, START, expected, make_specs, seed_calls
from support import ServerProcess
from web.procs import JS_DIR, GatewayProcess, last_json_line, run_node
from web.screenshots import SCREENSHOTS

CHARTS = ["calls", "handle-time", "topics", "suggestions", "sentiment", "alerts"]


def _clock(seconds: float) -> str:
    total = round(seconds)
    return f"{total // 60}:{total % 60:02d}"


async def _seed(url: str) -> list[object]:
    specs = make_specs()
    for spec in specs:
        spec.handle_s = spec.handle_s or 420  # all ended: nothing from March on the live floor
    async with await Store.open(url) as store:
        await seed_calls(store, specs)
    return specs  # type: ignore[return-value]


@pytest.mark.chromium
def test_insights_show_the_seeded_figures(
    web_server: ServerProcess, gateway: GatewayProcess, artifacts: Path
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    specs = asyncio.run(_seed(web_server.env["CALLPILOT_DATABASE_URL"]))
    end = START + 3 * HOUR
    want = expected(specs, START, end)  # type: ignore[arg-type]
    range_query = f"from={START.isoformat().replace('+00:00', 'Z')}&to={end.isoformat().replace('+00:00', 'Z')}&bucket=3600"
    empty_query = "from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z&bucket=3600"
    result = run_node(
        [str(JS_DIR / "insights.mjs"), gateway.url, str(SCREENSHOTS), range_query, empty_query],
        timeout=150,
        log_path=artifacts / "insights-page.log",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = last_json_line(result.stdout)
    (artifacts / "insights-page.json").write_text(json.dumps(seen, indent=2))

    for size in ("desk", "phone"):
        page = seen["pages"][f"figures@{size}"]
        assert page["figures"] == {
            "calls": str(want["calls"]),
            "p50": _clock(want["p50_s"]),
            "p90": _clock(want["p90_s"]),
            "shown": str(want["shown"]),
            "used": str(want["used"]),
            "dismissed": str(want["dismissed"]),
            "rated": str(want["rated"]),
            "tool-failures": f"{sum(f for _, f in want['tools'].values())} of {sum(c for c, _ in want['tools'].values())}",
        }
        assert page["tools"] == {name: [str(c), str(f)] for name, (c, f) in want["tools"].items()}
        assert [c["chart"] for c in page["charts"]] == CHARTS
        assert all(c["drawn"] and c["label"] for c in page["charts"]), page["charts"]
        assert "No calls in this range" in seen["pages"][f"empty@{size}"]["text"]
    assert {k: v for k, v in seen["axe"].items() if v} == {}
    assert {k: v for k, v in seen["overflow"].items() if v} == {}
    assert seen["errors"] == [], seen["errors"]
    for name in ("insights", "insights-empty"):
        for size in ("1280x800", "390x844"):
            assert (SCREENSHOTS / f"{name}-{size}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
