"""Word lists written as prose.

The rule modules keep their vocabularies (stop words, negators, fillers) as
whitespace-separated text, which reads and diffs far better than a list of
hundreds of quoted strings.
"""

from __future__ import annotations

__all__ = ["wordset"]


def wordset(text: str) -> frozenset[str]:
    """The whitespace-separated words of `text`, as a set."""
    return frozenset(text.split())
