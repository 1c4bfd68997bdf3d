"""Generates docs/data-import.md and docs/data-import.schema.json from the models.

The format's documentation is written from the same pydantic models that
validate imports (models.py): each field's row from its `description` and
whether it is required, each section's text from its model's docstring, the
examples from the models' examples, and the error table by running the
validator on sample mistakes, so the messages shown are the ones given.
tests/store/test_import_docs.py fails when the committed files differ.

    python -m callpilot.server.store.importer.docgen          # rewrite the files
    python -m callpilot.server.store.importer.docgen --check  # exit 1 if stale
"""

from __future__ import annotations

import copy
import inspect
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from callpilot.server.store.importer.errors import DataImportError
from callpilot.server.store.importer.models import SECTIONS, ImportDocument, OrderItem
from callpilot.server.store.importer.parse import parse_json
from callpilot.server.store.importer.validate import validate_document
from pydantic import BaseModel

DOC_PATH = Path("docs/data-import.md")
SCHEMA_PATH = Path("docs/data-import.schema.json")

_INTRO = """\
<!-- Generated from server/callpilot/server/store/importer/models.py by
     `python -m callpilot.server.store.importer.docgen`: edit the models, then rerun it. -->

# Importing directory data

Callpilot grounds its suggestions in your own data: customers, their orders and
support tickets, your policies and your knowledge base. You load that data as one
JSON document. The demo data set that a fresh install seeds
(`server/callpilot/server/store/demo_data.json`) uses this same format and goes
through the same import code, so it is a complete, working example. The format is
also published as a JSON Schema: [`data-import.schema.json`](data-import.schema.json).

From the command line, with the same database settings as `callpilot serve`
(`CALLPILOT_DATABASE_URL`, or the SQLite file in `CALLPILOT_DATA_DIR`):

```bash
callpilot db import acme.json          # "imported 120 customers, …"; exit status 0
callpilot db import broken.json        # one line per problem, naming record and field; exit status 2, nothing stored
```

From Python:

```python
from callpilot.server.store import Store

store = await Store.open("postgresql+asyncpg://callpilot@db/callpilot", tenant_id="acme")
report = await store.import_data(json_text_or_parsed_dict)
print(report)  # 24 customers, 64 orders, 32 tickets, 4 policies, 15 articles (139 created, 0 updated)
```

`import_data` accepts the parsed document (a `dict`) or its JSON text (`str` or
`bytes`). To check a file without a database, call the pure validator
`callpilot.server.store.validate_document(doc)`.

## How an import behaves

- **All or nothing.** The whole document is validated before anything is written.
  A bad file raises `DataImportError`, and nothing from it is stored, even when the
  bad record is the last one. On PostgreSQL the writes are one transaction. On
  SQLite, which has a single writer for the whole database, a large document is
  written in batches so that live calls can keep recording their events; if a
  batch fails, what the earlier batches wrote is undone. While such an import
  runs, lookups may already see the part written so far.
- **Every problem is named.** The error lists each problem (up to {max_violations}) by record
  and field; `callpilot db import` prints one per line. The exception's message names
  the first and counts the rest, for example:

  ```
  orders[3].customer_id: unknown customer "C-9999" (and 2 more problems)
  ```

  `DataImportError` is an `InvalidArgument`: `error.violations` holds one
  `(field, description)` pair per problem. Through the API these become a
  `google.rpc.BadRequest`.
- **Upserts.** A record whose id already exists (customer `id`, order `number`,
  ticket `id`, policy `type`, article `id`) is replaced. The items of a replaced
  order are replaced too, not merged. Imports never delete anything. The report
  counts records created and records updated.
- **Per tenant.** Everything goes to the store's tenant (`tenant_id` at open,
  `"default"` unless you choose one).
- **Partial documents.** Every section is optional. A file with only `articles`
  updates just the knowledge base. Orders and tickets may reference customers
  that are already in the database.

## The document

{document}

```json
{skeleton}
```

The file must be UTF-8 JSON. A key repeated within one object is an error (JSON
parsers differ on which copy wins), and so is nesting deeper than {max_depth} levels.
Text fields are trimmed. A required text field that is missing, `null` or blank
is an error.

### Dates

Dates are ISO 8601 strings:

- A date alone (`"2026-10-28"`) means midnight UTC on that day.
- A date-time with an offset (`"2026-10-28T14:05:00Z"`, `"2026-09-01T10:30:00+01:00"`)
  is converted to UTC.
- A date-time without an offset is taken as UTC.

### Money

Amounts are decimal strings such as `"129.99"`. JSON numbers (`129.99`, `10`) are
also accepted. An amount must not be negative, must not exceed one trillion, and
may have at most two decimal places. Amounts are stored exactly, in hundredths.

### Ids

Customer, ticket and article ids are 1 to 64 characters. Allowed characters are
letters, digits, `_`, `.`, `:` and `-`, and the first character must be a letter
or digit (for example `C-1001`, `T-5001`, `KB-001`).
"""

_BASE: dict[str, Any] = {
    "customers": [{"id": "C-1", "name": "Ada Lovelace"}, {"id": "C-2", "name": "Alan Turing"}],
    "orders": [
        {
            "number": f"1000{i}",
            "customer_id": "C-1",
            "status": "delivered",
            "total": "59.97",
            "currency": "USD",
            "order_date": "2026-09-01",
            "items": [{"sku": "CB-120", "name": "Cable", "quantity": 3, "unit_price": "19.99"}],
        }
        for i in range(3)
    ],
}


def _mutated(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    doc = copy.deepcopy(_BASE)
    change(doc)
    return doc


def _set(section: str, index: int, **values: Any) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc[section][index].update(values)


def _drop(section: str, index: int, key: str) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc[section][index].pop(key)


#: (problem, a document with it): the table shows what the validator says about each.
_ERROR_EXAMPLES: list[tuple[str, object]] = [
    ("reference to a missing customer", _mutated(_set("orders", 2, customer_id="C-9999"))),
    ("required field missing", _mutated(_drop("customers", 1, "name"))),
    ("wrong type", _mutated(lambda d: d["orders"][1]["items"][0].update(quantity="two"))),
    ("bad date", _mutated(_set("orders", 2, order_date="2026-13-01"))),
    ("delivery before order", _mutated(_set("orders", 2, delivered_date="2026-08-30"))),
    ("total does not add up", _mutated(_set("orders", 2, total="60.00"))),
    ("duplicate id", _mutated(_set("customers", 1, id="C-1"))),
    ("unknown field (typo)", _mutated(_set("customers", 0, emial="ada@example.org"))),
    ("bad phone", _mutated(_set("customers", 1, phone="555-0101"))),
    ("file is not JSON", "not json"),
    ("repeated key", '{"customers": [], "customers": []}'),
]


def _example_message(doc: object) -> str:
    try:
        validate_document(parse_json(doc) if isinstance(doc, str) else doc)
    except DataImportError as exc:
        first = exc.violations[0]
        return f"{first.field}: {first.description}"
    raise AssertionError(f"example document is valid: {doc!r}")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(model: type[BaseModel]) -> list[str]:
    rows = [("field", "required", "rules")]
    for name, info in model.model_fields.items():
        rules = info.description or ""
        default = info.get_default(call_default_factory=True)
        if isinstance(default, str) and default:
            rules += f"; default `{default}`"
        rows.append((f"`{name}`", "yes" if info.is_required() else "no", rules))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    out = [
        "| " + " | ".join(_cell(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in rows
    ]
    out.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return out


def _docstring(model: type[BaseModel]) -> str:
    return inspect.cleandoc(model.__doc__ or "")


def render_markdown() -> str:
    """docs/data-import.md as the models describe the format today."""
    from callpilot.server.store.importer.errors import MAX_VIOLATIONS
    from callpilot.server.store.importer.parse import MAX_DEPTH

    skeleton = "{\n" + ",\n".join(f'  "{name}": [...]' for name in SECTIONS) + "\n}"
    parts = [
        _INTRO.format(
            max_violations=MAX_VIOLATIONS,
            max_depth=MAX_DEPTH,
            document=_docstring(ImportDocument),
            skeleton=skeleton,
        ).rstrip("\n")
    ]
    for name, model in SECTIONS.items():
        parts.append(f"## {name}\n\n{_docstring(model)}\n\n" + "\n".join(_table(model)))
        if name == "orders":
            parts.append("Each item has:\n\n" + "\n".join(_table(OrderItem)))
        extra = model.model_config.get("json_schema_extra")
        examples = extra.get("examples") if isinstance(extra, dict) else None
        for example in examples if isinstance(examples, list) else []:
            parts.append("```json\n" + json.dumps(example, ensure_ascii=False) + "\n```")
    errors = [("problem", "example message")] + [
        (problem, f"`{_example_message(doc)}`") for problem, doc in _ERROR_EXAMPLES
    ]
    width = [max(len(_cell(r[i])) for r in errors) for i in range(2)]
    lines = [
        "| " + " | ".join(_cell(c).ljust(w) for c, w in zip(r, width, strict=True)) + " |" for r in errors
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in width) + "|")
    parts.append("## Error messages\n\n" + "\n".join(lines))
    return "\n\n".join(parts) + "\n"


def render_schema() -> str:
    """docs/data-import.schema.json: the JSON Schema of an import document."""
    schema = ImportDocument.model_json_schema()
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    root = Path(argv[argv.index("--root") + 1]) if "--root" in argv else Path.cwd()
    outputs: dict[Path, str] = {root / DOC_PATH: render_markdown(), root / SCHEMA_PATH: render_schema()}
    if "--check" in argv:
        stale = [str(p) for p, text in outputs.items() if not p.exists() or p.read_text("utf-8") != text]
        for name in stale:
            print(
                f"{name} is out of date: run python -m callpilot.server.store.importer.docgen",
                file=sys.stderr,
            )
        return 1 if stale else 0
    for path, text in outputs.items():
        path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
