"""Fixtures for the tool and local-assistant tests: an in-memory directory."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fakes.directory import FakeDirectory


@pytest.fixture
def directory() -> FakeDirectory:
    return FakeDirectory()
