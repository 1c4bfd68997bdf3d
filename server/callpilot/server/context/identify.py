"""Finding the caller and their order from what was heard, over a `Directory`.

The rules (why a match is taken or only offered):

* A name alone is taken only when every heard word (at least two: first
  name and surname) equals the directory name and no other customer comes
  close. Anything less sure is a *candidate*: shown to the agent with its
  score and reason ('Maria Garsha? name "Maria Garsha" sounds like "Maria Garcia"'), never used as
  the customer until something corroborates it.
* A heard order number that is not on file is compared with the identified
  customer's orders (and only theirs): one digit dropped, added, changed or
  two swapped makes it an order candidate for the agent to confirm. With no
  customer known, a near miss is offered only when exactly one order in the
  whole directory fits (and only if the directory can look numbers up in
  bulk, see `directory.FuzzyDirectory`).
"""

from __future__ import annotations

from collections.abc import Sequence

from callpilot.v1 import directory_pb2, events_pb2

from ..directory import Directory, FuzzyDirectory
from .matching import fold_name, name_score, near_miss, one_edit_variants

__all__ = [
    "CANDIDATE_SCORE",
    "customer_candidates",
    "is_sure",
    "order_near_misses",
]

CANDIDATE_SCORE = 80.0
"""Below this a name match is not worth showing."""
MAX_CANDIDATES = 3
_CLOSE = 8.0  # a second candidate this close makes a name ambiguous


async def _candidate_pool(directory: Directory, heard: str) -> list[tuple[str, str]]:
    if isinstance(directory, FuzzyDirectory):
        return await directory.customer_names()
    # Without a name index: what the ordinary search finds for each heard
    # word and for its first three letters ("gar" finds Garcia for "Garsha").
    pool: dict[str, str] = {}
    for word in fold_name(heard).split():
        for query in dict.fromkeys((word, word[:3])):
            if len(query) >= 2:
                for c in await directory.search_customers(query, limit=20):
                    pool[c.customer_id] = c.name
    return sorted(pool.items())


async def customer_candidates(directory: Directory, heard: str) -> list[events_pb2.CustomerCandidate]:
    """Customers whose name fits `heard`, best first, with score and reason (at most 3)."""
    scored: list[tuple[float, str, str, str]] = []
    for customer_id, name in await _candidate_pool(directory, heard):
        match = name_score(heard, name)
        if match.score >= CANDIDATE_SCORE:
            scored.append((match.score, customer_id, name, match.how))
    scored.sort(key=lambda s: (-s[0], s[1]))
    out: list[events_pb2.CustomerCandidate] = []
    for score, customer_id, name, how in scored[:MAX_CANDIDATES]:
        customer = await directory.get_customer(customer_id)
        if customer is None:
            continue
        reason = f'name "{heard}" ' + ("matches" if how == "exact" else how) + f' "{name}"'
        out.append(events_pb2.CustomerCandidate(customer=customer, score=score, reason=reason))
    return out


def is_sure(heard: str, candidates: Sequence[events_pb2.CustomerCandidate]) -> bool:
    """A name alone identifies the caller: full name, every word exact, nobody else close."""
    if not candidates or len(fold_name(heard).split()) < 2:
        return False
    top = candidates[0]
    if fold_name(top.customer.name) != fold_name(heard) and top.score < 100.0:
        return False
    return not any(c.score >= top.score - _CLOSE for c in candidates[1:])


async def order_near_misses(
    directory: Directory, heard: str, orders: Sequence[directory_pb2.Order] | None
) -> list[events_pb2.OrderCandidate]:
    """Orders `heard` may have meant: among `orders` (the identified
    customer's) when given, else a unique match across the directory."""
    if orders is not None:
        found = []
        for order in orders:
            how = near_miss(heard, order.order_number)
            if how:
                found.append(
                    events_pb2.OrderCandidate(
                        order=order, heard=heard, reason=f"{how}; one of the customer\u2019s orders"
                    )
                )
        return found
    if not isinstance(directory, FuzzyDirectory) or not 4 <= len(heard) <= 10:
        return []
    matches = await directory.find_orders(one_edit_variants(heard))
    if len(matches) != 1:
        return []  # several orders fit: a guess, not a match
    order = matches[0]
    how = near_miss(heard, order.order_number)
    return [events_pb2.OrderCandidate(order=order, heard=heard, reason=f"{how}; the only order that fits")]
