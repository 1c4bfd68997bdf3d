"""Decoding an import file into Python values, with problems reported like validation's.

`json.loads` alone would crash with a RecursionError on deeply nested input
and would silently keep the last of two repeated keys (so a file with two
"orders" lists would drop the first); both are rejected here with a
message a person can act on.
"""

from __future__ import annotations

import json
import re

from callpilot.server.errors import Violation
from callpilot.server.store.importer.errors import MAX_VIOLATIONS, DataImportError

#: No valid document nests deeper than 5 (document, section, record, items, item);
#: anything much deeper is not an import file, and the decoder must not recurse on it.
MAX_DEPTH = 64
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def parse_json(text: str | bytes) -> object:
    """Decode an import file; DataImportError for invalid JSON, deep nesting or repeated keys."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataImportError([Violation("(document)", f"is not UTF-8 text: {exc.reason}")]) from exc
    depth = _max_depth(text)
    if depth > MAX_DEPTH:
        raise DataImportError(
            [
                Violation(
                    "(document)",
                    f"nests lists and objects more than {MAX_DEPTH} deep; an import file needs 5",
                )
            ]
        )
    repeated: list[str] = []

    def no_repeats(pairs: list[tuple[str, object]]) -> dict[str, object]:
        obj: dict[str, object] = {}
        for key, value in pairs:
            if key in obj and len(repeated) < MAX_VIOLATIONS:
                repeated.append(key)
            obj[key] = value
        return obj

    try:
        doc = json.loads(text, object_pairs_hook=no_repeats)
    except json.JSONDecodeError as exc:
        raise DataImportError(
            [
                Violation(
                    "(document)", f"is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
                )
            ]
        ) from exc
    except RecursionError as exc:  # _max_depth bounds nesting; this is belt and braces
        raise DataImportError([Violation("(document)", "nests lists and objects too deep")]) from exc
    if repeated:
        raise DataImportError(
            [
                Violation("(document)", f'repeats the key "{key}" in one object; each key may appear once')
                for key in repeated
            ]
        )
    return doc


def _max_depth(text: str) -> int:
    """How deep brackets nest outside strings, stopping once past MAX_DEPTH; never recurses.

    Strings are blanked by a regular expression first so the Python loop
    visits only bracket characters.
    """
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub('""', text)):
        if match.group() in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_DEPTH:
                    break
        else:
            depth -= 1
    return deepest
