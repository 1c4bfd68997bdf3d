"""Admission control: how many calls may be live, taken atomically.

A slot is taken synchronously (no await between the check and the take),
so a burst of concurrent StreamCall/CreateCall requests can never overshoot
a limit: on one event loop only one coroutine runs between awaits. A slot
is held from admission until the call's session closes, or, for a call
created ahead of its stream (CreateCall), until its stream attaches (the
slot passes to the session), it is ended, or its reservation expires.

Two gates apply to every call: the tenant's (`CALLPILOT_MAX_CALLS_PER_TENANT`,
one per SessionManager) and the server's (`CALLPILOT_MAX_CALLS`, one
`Gate` shared by every tenant's manager). A call needs both; when either is
full the request gets RESOURCE_EXHAUSTED with a RetryInfo.
"""

from __future__ import annotations

from callpilot.server.errors import ResourceExhausted

# What RetryInfo suggests to a refused client: calls last minutes, but a
# slot frees whenever any call ends, so a short, jittered retry is right.
RETRY_DELAY_S = 2.0


class Gate:
    """A counter with a limit; `take` and `give` never await."""

    def __init__(self, limit: int, *, what: str, setting: str) -> None:
        self.limit = limit
        self.in_use = 0
        self.what = what
        self.setting = setting

    def full(self) -> bool:
        return self.in_use >= self.limit


class Slot:
    """One admitted call's hold on its gates; `release` is idempotent."""

    def __init__(self, gates: tuple[Gate, ...]) -> None:
        self._gates = gates
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            for gate in self._gates:
                gate.in_use -= 1


def admit(*gates: Gate) -> Slot:
    """Take a slot in every gate or in none; raises ResourceExhausted (with a retry delay)."""
    for gate in gates:
        if gate.full():
            raise ResourceExhausted(
                f"{gate.what} already has {gate.limit} live calls ({gate.setting}); retry later or elsewhere",
                metadata={"limit": str(gate.limit), "setting": gate.setting},
                retry_delay_s=RETRY_DELAY_S,
            )
    for gate in gates:
        gate.in_use += 1
    return Slot(gates)
