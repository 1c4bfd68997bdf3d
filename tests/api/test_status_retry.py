"""Errors that know when to come back carry a google.rpc.RetryInfo."""

from __future__ import annotations

from callpilot.server.admission import Gate, admit
from callpilot.server.api.status import rich_status
from callpilot.server.auth.errors import RateLimited
from callpilot.server.errors import CallpilotError, InvalidArgument, ResourceExhausted, Violation
from callpilot.server.manager import draining_error
from google.rpc import error_details_pb2, status_pb2


def _retry_delay(status: status_pb2.Status) -> float | None:
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return float(info.retry_delay.ToNanoseconds()) / 1e9
    return None


def _reason(status: status_pb2.Status) -> str:
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return ""


def test_the_rate_limit_carries_its_retry_delay() -> None:
    status = rich_status(RateLimited(retry_delay_s=0.25, rate=10))
    assert _reason(status) == "RATE_LIMITED"
    assert _retry_delay(status) == 0.25


def test_a_full_gate_refuses_with_a_retry_delay_and_takes_nothing() -> None:
    tenant, server = Gate(5, what="t", setting="A"), Gate(1, what="s", setting="B")
    admit(tenant, server)
    try:
        admit(tenant, server)
    except ResourceExhausted as err:
        status = rich_status(err)
        assert _retry_delay(status) is not None and err.metadata["setting"] == "B"
    else:
        raise AssertionError("a full gate admitted a call")
    assert (tenant.in_use, server.in_use) == (1, 1)


def test_a_released_slot_is_released_once() -> None:
    gate = Gate(1, what="s", setting="B")
    slot = admit(gate)
    slot.release()
    slot.release()
    assert gate.in_use == 0
    admit(gate)


def test_draining_says_why_and_when_to_retry() -> None:
    status = rich_status(draining_error())
    assert _reason(status) == "SERVER_DRAINING" and _retry_delay(status)


def test_errors_without_a_delay_carry_no_retry_info() -> None:
    errors: list[CallpilotError] = [InvalidArgument(Violation("x", "bad")), ResourceExhausted("full")]
    for err in errors:
        assert _retry_delay(rich_status(err)) is None
