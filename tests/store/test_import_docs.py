"""The import format's documentation is generated from the models that validate imports."""

from __future__ import annotations

import json
from pathlib import Path

from callpilot.server.store.importer import docgen, validate_document

ROOT = Path(__file__).resolve().parents[2]


def test_committed_doc_is_the_generated_one() -> None:
    committed = (ROOT / docgen.DOC_PATH).read_text(encoding="utf-8")
    assert committed == docgen.render_markdown(), (
        "docs/data-import.md is stale: run python -m callpilot.server.store.importer.docgen"
    )


def test_committed_json_schema_is_the_generated_one() -> None:
    committed = (ROOT / docgen.SCHEMA_PATH).read_text(encoding="utf-8")
    assert committed == docgen.render_schema()


def test_check_mode_notices_a_stale_doc(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    assert docgen.main(["--root", str(tmp_path)]) == 0
    assert docgen.main(["--check", "--root", str(tmp_path)]) == 0
    (tmp_path / docgen.DOC_PATH).write_text("# hand-edited\n", encoding="utf-8")
    assert docgen.main(["--check", "--root", str(tmp_path)]) == 1


def test_documented_examples_are_valid_imports() -> None:
    """Every section's example in the doc is a record the validator accepts."""
    schema = json.loads(docgen.render_schema())
    customer = schema["$defs"]["Customer"]["examples"][0]
    order = schema["$defs"]["Order"]["examples"][0]
    doc = validate_document({"customers": [customer], "orders": [order]})
    assert (doc.customers[0].id, doc.orders[0].number) == (customer["id"], order["number"])
