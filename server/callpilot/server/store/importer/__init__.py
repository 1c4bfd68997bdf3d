"""Importing directory data (customers, orders, tickets, policies, articles).

The format is the pydantic models in models.py; docs/data-import.md and
docs/data-import.schema.json are generated from them (docgen.py).
Validation is a pure function over the whole document and runs before
anything is written, so a bad file is rejected whole with every problem
named by record and field (`orders[3].customer_id: unknown customer
"C-9999"`); the writes (write.py) go through the store's one upsert
helper. The demo data ships in this same format and goes through this same
code, which keeps the format honest.

- parse.py: JSON text to values (no deep nesting, no repeated keys)
- rules.py, models.py: the format; validate.py: whole-document validation
- write.py: the SQL writes, batches and their undo
- normalize.py: canonical forms that lookups share
"""

from callpilot.server.store.importer.errors import MAX_VIOLATIONS, DataImportError, ImportReport
from callpilot.server.store.importer.normalize import (
    format_cents,
    normalize_order_number,
    parse_iso8601,
    phone_digits,
)
from callpilot.server.store.importer.parse import MAX_DEPTH, parse_json
from callpilot.server.store.importer.validate import DataDocument, referenced_customer_ids, validate_document
from callpilot.server.store.importer.write import existing_keys, write_document

__all__ = [
    "MAX_DEPTH",
    "MAX_VIOLATIONS",
    "DataDocument",
    "DataImportError",
    "ImportReport",
    "existing_keys",
    "format_cents",
    "normalize_order_number",
    "parse_iso8601",
    "parse_json",
    "phone_digits",
    "referenced_customer_ids",
    "validate_document",
    "write_document",
]
