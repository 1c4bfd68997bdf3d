"""The gateway's access log never writes a credential carried in the query string."""

from __future__ import annotations

from callpilot.gateway.accesslog import redacted


def test_credential_parameters_are_redacted() -> None:
    assert redacted("/ws/ice-candidates/call-1?role=agent&access_token=cp_abc_def") == (
        "/ws/ice-candidates/call-1?role=agent&access_token=%5Bredacted%5D"
    )
    assert "cpj_" not in redacted("/call?join=cpj_xyz&call=call-1&trickle=0")
    assert redacted("/call?join=cpj_xyz&call=call-1").endswith("&call=call-1")
    assert redacted("/healthz") == "/healthz"
