"""The desk's pages in headless Chromium at 1280x800 and 390x844: the calls
list, an ended call with its wrap-up, an unknown call, the app's 404 page,
/call and /answer. Each page is checked from the DOM and by axe-core (no
serious or critical violations), and photographed (web/screenshots.py says where).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from web.procs import JS_DIR, FinishedCall, GatewayProcess, last_json_line, run_node
from web.screenshots import SCREENSHOTS

PAGES = ("calls", "call-ended", "call-not-found", "not-found", "call", "answer")
SIZES = ("1280x800", "390x844")
RED = "rgb(185, 28, 28)"


@pytest.mark.chromium
def test_desk_pages(gateway: GatewayProcess, finished_call: FinishedCall, artifacts: Path) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    result = run_node(
        [str(JS_DIR / "desk_pages.mjs"), gateway.url, finished_call.call_id, str(SCREENSHOTS)],
        timeout=200,
        log_path=artifacts / "desk-pages.log",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = last_json_line(result.stdout)
    (artifacts / "desk-pages.json").write_text(json.dumps(seen, indent=2))

    # axe-core: nothing serious or critical on any page, at either size.
    assert {page: v for page, v in seen["axe"].items() if v} == {}
    # Nothing scrolls sideways, the phone size included.
    assert {page: o for page, o in seen["overflow"].items() if o} == {}

    for size in ("desk", "phone"):
        # The calls list names the customer, not only the id.
        assert seen["pages"][f"calls@{size}"]["customer"].startswith("Maria Garcia")

        # The ended call: one state badge that says so; the wrap-up is open with
        # the server's summary in an editable box; the words are for agents.
        call = seen["pages"][f"ended@{size}"]
        assert call["states"] == [["ended", "Ended"]]
        assert not call["liveWords"]
        assert call["title"] == "Maria Garcia"
        assert call["summaryVisible"] and "Maria Garcia" in call["summary"]
        assert "client closed" not in call["reasonText"] and "stream" not in call["reasonText"]
        assert "Not saved yet" in call["savePending"]
        # Every line has its time in the call; lines use the column's width.
        assert call["lines"] >= 2 and len(call["times"]) == call["lines"]
        assert all(t and ":" in t for t in call["times"])
        assert call["lineWidth"] >= 0.85 * call["columnWidth"] - 20
        # Identity is on the card, not a suggestion; no lookup shown twice.
        assert not any(t.startswith("The caller is") for t in call["suggestionTexts"])
        assert call["lookupCustomerCards"] == 0
        assert len(call["toolKeys"]) == len(set(call["toolKeys"])), call["toolKeys"]

        # An unknown call id: "not found", never a live badge.
        unknown = seen["pages"][f"unknown@{size}"]
        assert unknown["heading"] == "Call not found" and "no-such-call" in unknown["text"]
        assert unknown["live"] == 0
        assert seen["pages"][f"404@{size}"]["heading"] == "Page not found"

        # /call and /answer: the desk's header and font; a disabled Hang up is quiet, not red.
        for name in ("call", "answer"):
            page = seen["pages"][f"{name}@{size}"]
            assert "Callpilot" in page["header"] and "system-ui" in page["font"]
            assert page["hangupDisabled"] and page["hangupBackground"] != RED
            assert page["hangupOpacity"] == "1"
    # The ended call's wrap-up takes the focus at the desk size.
    assert seen["pages"]["ended@desk"]["wrapupFocused"]

    # Keyboard: the skip link first, then the header links, each with a visible focus ring.
    assert seen["focus"][0]["text"] == "Skip to content"
    assert all(f["outline"] != "none" for f in seen["focus"]), seen["focus"]
    assert seen["openedByKeyboard"]
    assert seen["errors"] == [], seen["errors"]

    for name in PAGES:
        for size in SIZES:
            shot = SCREENSHOTS / f"{name}-{size}.png"
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", shot
