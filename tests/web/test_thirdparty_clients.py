"""grpc-web clients nobody here wrote, in node and in Chromium, against the real server.

@connectrpc/connect-web's grpc-web transport (fetch, binary) and Google's
grpc-web runtime (XHR; grpc-web-text and binary) each make a unary call, a
failing call, and a server-streaming WatchCall through the gateway.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from web.procs import JS_DIR, FinishedCall, GatewayProcess, StaticSite, last_json_line, run_node


def _check(results: list[dict[str, Any]], finished: FinishedCall) -> None:
    sequences = [e.sequence for e in finished.durable]
    by_client = {r["client"]: r for r in results}
    assert set(by_client) == {"connect-web", "grpc-web-text", "grpc-web-binary"}, results
    for name, r in by_client.items():
        assert "failed" not in r, f"{name}: {r.get('failed')}"
        assert r["unary"] == {"orderNumber": "78901", "item": "Wireless Headphones"}, name
        assert r["stream"]["sequences"] == sequences, name
        assert r["stream"]["cases"][0] == "callStarted" and r["stream"]["cases"][-1] == "callEnded", name
    connect = by_client["connect-web"]
    assert connect["error"] == {
        "code": "NotFound",
        "message": "no order numbered '00000'",
        "reason": "ORDER_NOT_FOUND",  # grpc-status-details-bin decoded by connect
        "wire": True,
    }
    for name in ("grpc-web-text", "grpc-web-binary"):
        google = by_client[name]
        assert google["error"] == {"code": 5, "message": "no order numbered '00000'", "hasDetails": True}, (
            name
        )
        assert google["stream"]["ended"] and google["stream"]["status"] == {"code": 0, "details": ""}, name


def test_in_node(gateway: GatewayProcess, finished_call: FinishedCall, artifacts: Path) -> None:
    result = run_node(
        [str(JS_DIR / "thirdparty_node.mjs"), gateway.url, finished_call.call_id],
        timeout=90,
        log_path=artifacts / "thirdparty-node.log",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    _check(last_json_line(result.stdout)["results"], finished_call)


@pytest.mark.chromium
def test_in_chromium_across_origins(
    gateway: GatewayProcess, other_site: StaticSite, finished_call: FinishedCall, artifacts: Path
) -> None:
    result = run_node(
        [
            str(JS_DIR / "thirdparty_browser.mjs"),
            other_site.origin,
            other_site.other_origin,
            gateway.url,
            finished_call.call_id,
            str(artifacts / "thirdparty-chromium.png"),
        ],
        timeout=120,
        log_path=artifacts / "thirdparty-chromium.log",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = last_json_line(result.stdout)
    _check(out["allowed"], finished_call)
    assert out["errors"] == [], out["errors"]
    # The same page on an origin that is not on the list: the browser blocks it.
    assert out["denied"]["blocked"], out["denied"]
