"""`Store` satisfies the persistence Protocols the rest of the server is typed against.

mypy proves it statically (the TYPE_CHECKING assignments at the bottom of
callpilot/server/store/store.py); this checks the same at runtime, member by
member, so a renamed parameter or a method turned sync fails here too, even
where mypy is not run.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from callpilot.server.directory import Directory, DirectoryWriter
from callpilot.server.store import Store
from callpilot.server.store.protocols import CallLog

PROTOCOLS = [Directory, DirectoryWriter, CallLog]


def _members(protocol: type[Any]) -> list[str]:
    return sorted(
        name
        for name, value in vars(protocol).items()
        if not name.startswith("_") and inspect.isfunction(value)
    )


def _params(fn: Any) -> list[tuple[str, Any]]:
    # Protocols write `= ...` for "some default": only whether one exists must match.
    return [
        (p.name, p.kind, p.default is inspect.Parameter.empty)
        for p in inspect.signature(fn).parameters.values()
    ]


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.__name__)
def test_store_has_every_protocol_member_with_the_same_signature(protocol: type[Any]) -> None:
    members = _members(protocol)
    assert members, f"{protocol.__name__} declares no methods"
    for name in members:
        declared = getattr(protocol, name)
        implemented = getattr(Store, name, None)
        assert implemented is not None, f"Store lacks {protocol.__name__}.{name}"
        assert inspect.iscoroutinefunction(implemented) == inspect.iscoroutinefunction(declared), name
        assert _params(implemented) == _params(declared), f"{protocol.__name__}.{name}"


def test_store_is_a_runtime_directory_writer() -> None:
    # DirectoryWriter is runtime_checkable: the assistant offers write tools only when this holds.
    assert issubclass(Store, DirectoryWriter)


def test_the_check_catches_a_mismatch() -> None:
    class Wrong:
        async def get_call(self, id: str) -> None: ...  # parameter renamed

    assert _params(Wrong.get_call) != _params(CallLog.get_call)
