"""Validating an import document: the models' checks plus the rules that span records.

Pure (no I/O) and whole-document: every problem is collected, named by
record and field (`orders[3].customer_id: unknown customer "C-9999"`), and
reported in document order, so a person fixes a file in one pass.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, cast

from callpilot.server.errors import Violation
from callpilot.server.store.importer import rules
from callpilot.server.store.importer.errors import MAX_VIOLATIONS, DataImportError
from callpilot.server.store.importer.models import (
    SECTIONS,
    Article,
    Customer,
    Order,
    OrderItem,
    Policy,
    Ticket,
)
from callpilot.server.store.importer.normalize import describe
from pydantic import BaseModel, BeforeValidator, ConfigDict, TypeAdapter, ValidationError

_Loc = tuple[int | str, ...]


@dataclass(frozen=True, slots=True)
class DataDocument:
    """A validated import document, normalised and ready to write."""

    customers: tuple[Customer, ...]
    orders: tuple[Order, ...]
    tickets: tuple[Ticket, ...]
    policies: tuple[Policy, ...]
    articles: tuple[Article, ...]


def referenced_customer_ids(doc: object) -> set[str]:
    """Customer ids that orders and tickets of a raw document point at.

    Tolerates any junk (it runs before validation): the importer uses it to
    ask the database which of them already exist.
    """
    found: set[str] = set()
    if not isinstance(doc, Mapping):
        return found
    for key in ("orders", "tickets"):
        records = doc.get(key)
        if isinstance(records, list):
            for rec in records:
                if isinstance(rec, Mapping) and isinstance(rec.get("customer_id"), str):
                    found.add(rec["customer_id"].strip())
    return found


class _Envelope(BaseModel):
    """The document's top level alone; each record is then validated on its own (see below)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    customers: Annotated[list[Any], BeforeValidator(rules.section)] = []
    orders: Annotated[list[Any], BeforeValidator(rules.section)] = []
    tickets: Annotated[list[Any], BeforeValidator(rules.section)] = []
    policies: Annotated[list[Any], BeforeValidator(rules.section)] = []
    articles: Annotated[list[Any], BeforeValidator(rules.section)] = []


def validate_document(doc: object, *, known_customer_ids: Collection[str] = frozenset()) -> DataDocument:
    """Check a whole import document and return it normalised.

    Pure: no I/O. `known_customer_ids` are customers already in the
    database, which orders and tickets may reference besides the document's
    own. Raises DataImportError listing every problem (up to MAX_VIOLATIONS).

    The records are validated one by one with their section's model (the
    same models ImportDocument is made of), so that the rules spanning
    records can use every record that passed and, of one that did not,
    every field that passed.
    """
    problems: list[tuple[_Loc, str]] = []
    try:
        envelope = _Envelope.model_validate(doc)
    except ValidationError as exc:
        problems.extend((tuple(e["loc"]), _message(e)) for e in exc.errors(include_url=False))
        envelope = None
    valid: dict[str, list[BaseModel | None]] = {}
    for section, model in SECTIONS.items():
        raw = doc.get(section) if isinstance(doc, Mapping) else None
        if not isinstance(raw, list):
            valid[section] = []
            continue
        records: list[BaseModel | None] = []
        for i, rec in enumerate(raw):
            try:
                records.append(model.model_validate(rec))
            except ValidationError as exc:
                records.append(None)
                problems.extend(
                    ((section, i, *e["loc"]), _message({**e, "loc": (section, i, *e["loc"])}))
                    for e in exc.errors(include_url=False)
                )
        valid[section] = records
    if isinstance(doc, Mapping):
        bad = {loc for loc, _ in problems}
        problems.extend(_cross_record(doc, valid, bad, known_customer_ids))
    if problems or envelope is None:
        ordered = sorted(problems, key=lambda p: _order(p[0]))  # stable: a record's own order is kept
        raise DataImportError([Violation(_path(loc), message) for loc, message in ordered[:MAX_VIOLATIONS]])
    return DataDocument(
        customers=tuple(cast(list[Customer], valid["customers"])),
        orders=tuple(cast(list[Order], valid["orders"])),
        tickets=tuple(cast(list[Ticket], valid["tickets"])),
        policies=tuple(cast(list[Policy], valid["policies"])),
        articles=tuple(cast(list[Article], valid["articles"])),
    )


def _message(error: Any) -> str:
    kind, loc = error["type"], tuple(error["loc"])
    if kind == rules.ERROR_TYPE:
        return str(error["ctx"]["message"])
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        if len(loc) == 1:
            return f"unknown section (expected: {', '.join(SECTIONS)})"
        return f"unknown field (expected one of: {', '.join(_model_at(loc).model_fields)})"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        if not loc:
            return f"must be a JSON object with lists {', '.join(SECTIONS)}, got {describe(error['input'])}"
        return f"must be an object, got {describe(error['input'])}"
    if kind in ("list_type", "tuple_type"):
        return f"must be a list, got {describe(error['input'])}"
    return str(error["msg"])  # not reached by the models' own rules; pydantic's words then


def _model_at(loc: _Loc) -> type[BaseModel]:
    """The model of the record that an unknown field at `loc` was found in."""
    if len(loc) >= 5 and loc[2] == "items":
        return OrderItem
    return SECTIONS[str(loc[0])]


def _path(loc: _Loc) -> str:
    if not loc:
        return "(document)"
    out = str(loc[0])
    for part in loc[1:]:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _order(loc: _Loc) -> tuple[int, int]:
    """Document-level problems first, then by section and record."""
    if len(loc) < 2 or loc[0] not in SECTIONS:
        return (-1, 0)
    index = loc[1]
    return (list(SECTIONS).index(str(loc[0])), index if isinstance(index, int) else 0)


_ADAPTERS: dict[tuple[type[BaseModel], str], TypeAdapter[Any]] = {}


def _field_value(model: type[BaseModel], rec: Mapping[str, object], name: str) -> Any:
    """The field's validated value, for a record whose field passed (so this cannot fail)."""
    key = (model, name)
    adapter = _ADAPTERS.get(key)
    if adapter is None:
        info = model.model_fields[name]
        adapter = _ADAPTERS[key] = TypeAdapter(info.rebuild_annotation())
    return adapter.validate_python(rec.get(name))


def _cross_record(
    doc: Mapping[object, object],
    valid: Mapping[str, list[BaseModel | None]],
    bad: set[_Loc],
    known_customer_ids: Collection[str],
) -> list[tuple[_Loc, str]]:
    """Unique ids within the file and references to known customers.

    Uses every field that passed its own rule, even in a record with other
    problems: a customer with a bad email still defines its id, so its
    orders are not also reported as orphans.
    """
    problems: list[tuple[_Loc, str]] = []
    declared: set[str] = set()
    sections_bad = {loc[0] for loc in bad if len(loc) == 1}

    def records(section: str) -> list[tuple[int, Mapping[str, object]]]:
        raw = doc.get(section)
        if section in sections_bad or not isinstance(raw, list):
            return []
        return [(i, rec) for i, rec in enumerate(raw) if isinstance(rec, Mapping) and (section, i) not in bad]

    def ok(section: str, i: int, name: str) -> bool:
        return (section, i, name) not in bad

    def value(section: str, i: int, rec: Mapping[str, object], name: str) -> Any:
        record = valid[section][i]
        if record is not None:
            return getattr(record, name)
        return _field_value(SECTIONS[section], rec, name)  # a record with problems elsewhere

    def unique(section: str, name: str, what: str, on_new: Any = None) -> None:
        seen: dict[str, int] = {}
        for i, rec in records(section):
            if not ok(section, i, name):
                continue
            key = value(section, i, rec, name)
            if key in seen:
                problems.append(
                    ((section, i, name), f'duplicate {what} "{key}" (first at {section}[{seen[key]}])')
                )
            else:
                seen[key] = i
                if on_new is not None:
                    on_new(key)

    def references(section: str) -> None:
        for i, rec in records(section):
            if ok(section, i, "customer_id"):
                customer_id = value(section, i, rec, "customer_id")
                if customer_id not in declared and customer_id not in known_customer_ids:
                    problems.append(((section, i, "customer_id"), f'unknown customer "{customer_id}"'))

    unique("customers", "id", "id", declared.add)
    unique("orders", "number", "order number")
    references("orders")
    unique("tickets", "id", "id")
    references("tickets")
    unique("policies", "type", "policy type")
    unique("articles", "id", "id")
    return problems
