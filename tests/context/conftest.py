"""Fixtures for the context-engine tests: the in-memory directory of tests/assist."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "assist"))
from fakes.directory import FakeDirectory


@pytest.fixture
def directory() -> FakeDirectory:
    return FakeDirectory()
