"""What an import reports: the rejection (every problem) or what it wrote."""

from __future__ import annotations

from dataclasses import dataclass

from callpilot.server.errors import InvalidArgument, Violation

#: Validation stops collecting after this many problems; the message says so.
MAX_VIOLATIONS = 100


class DataImportError(InvalidArgument):
    """A data file was rejected; `violations` lists every problem found (up to MAX_VIOLATIONS).

    It is an InvalidArgument so that an import reached through the API
    becomes INVALID_ARGUMENT with a BadRequest detail per bad field. Its
    message names the first problem and counts the rest; `lines()` names
    them all, one per line, for a person reading a terminal.
    """

    def __init__(self, violations: list[Violation]) -> None:
        first = f"{violations[0].field}: {violations[0].description}"
        more = len(violations) - 1
        message = first if more == 0 else f"{first} (and {more} more problem{'s' if more > 1 else ''})"
        super().__init__(violations, message)

    def lines(self) -> list[str]:
        """One "field: description" line per problem, in document order."""
        out = [f"{v.field}: {v.description}" for v in self.violations]
        if len(self.violations) >= MAX_VIOLATIONS:
            out.append(f"(stopped after {MAX_VIOLATIONS} problems; fix these and import again)")
        return out


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import wrote: records per kind, and how many were new vs. replaced."""

    customers: int = 0
    orders: int = 0
    tickets: int = 0
    policies: int = 0
    articles: int = 0
    created: int = 0
    updated: int = 0

    def __str__(self) -> str:
        return (
            f"{self.customers} customers, {self.orders} orders, {self.tickets} tickets, "
            f"{self.policies} policies, {self.articles} articles "
            f"({self.created} created, {self.updated} updated)"
        )
