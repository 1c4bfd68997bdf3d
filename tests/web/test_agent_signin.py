"""The agent app's sign-in in headless Chromium, against a gateway and an auth-on server
(keys made by `callpilot keys create`): the sign-in screen when the server asks, a bad
key's reason, a pasted agent key, sign-out, and a JWT handed over as `#token=` in the URL
fragment (a valid one signs in, an expired one is asked again with the reason); axe-core on the sign-in screen, screenshots (web/screenshots.py says where)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import GatewayProcess
from web.auth_support import AuthServer
from web.auth_support import auth_server as start_auth_server
from web.procs import JS_DIR, JsBuild, last_json_line, run_node
from web.screenshots import SCREENSHOTS


@pytest.fixture(scope="module")
def authed(tmp_path_factory: pytest.TempPathFactory, artifacts: Path) -> Iterator[AuthServer]:
    with start_auth_server(tmp_path_factory.mktemp("signin-auth"), artifacts / "server-signin.log") as s:
        yield s


@pytest.fixture(scope="module")
def auth_gateway(authed: AuthServer, js_build: JsBuild, artifacts: Path) -> Iterator[GatewayProcess]:
    proc = GatewayProcess(
        authed.proc.address,
        artifacts / "gateway-signin.log",
        env={"CALLPILOT_STATIC_DIR": str(js_build.app_dir), "CALLPILOT_AUTH": "on"},
    ).start()
    yield proc
    proc.stop()


@pytest.mark.chromium
def test_agent_app_sign_in(auth_gateway: GatewayProcess, authed: AuthServer, artifacts: Path) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    result = run_node(
        [
            str(JS_DIR / "agent_signin.mjs"),
            auth_gateway.url,
            authed.agent,
            str(SCREENSHOTS),
            authed.jwt(),
            authed.jwt(exp=int(time.time()) - 60),
        ],
        timeout=180,
        log_path=artifacts / "agent-signin.log",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = last_json_line(result.stdout)
    (artifacts / "agent-signin.json").write_text(json.dumps(seen, indent=2))

    assert {page: v for page, v in seen["axe"].items() if v} == {}
    assert {page: o for page, o in seen["overflow"].items() if o} == {}
    steps = seen["steps"]
    for size in ("desk", "phone"):
        first = steps[f"first@{size}"]
        assert first["reason"] == "MISSING_CREDENTIALS" and first["focusable"]
        assert "needs you to sign in" in first["text"]
    # A bad key: the server's reason, in words and as its code; nothing kept.
    assert steps["bad"]["reason"] == "INVALID_API_KEY"
    assert "not accepted" in steps["bad"]["text"] and "INVALID_API_KEY" in steps["bad"]["text"]
    assert steps["bad"]["stored"] is None
    assert steps["signedIn"] == {"stored": True, "signOut": 1}
    assert steps["signedOut"] == {"reason": "SIGNED_OUT", "stored": None}
    fragment = steps["fragment"]
    assert fragment["signIn"] == 0 and fragment["stored"] and fragment["hash"] == ""
    assert "token" not in fragment["href"]
    expired = steps["expired"]
    assert expired["reason"] == "TOKEN_EXPIRED" and "expired" in expired["text"]
    assert expired["hash"] == "" and expired["stored"] is None
    assert authed.agent not in " ".join(seen["errors"])
