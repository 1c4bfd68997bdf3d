"""The LLM prompt carries unconfirmed candidates as such, never as the customer."""

from __future__ import annotations

from callpilot.server.assist.base import AssistRequest, ConversationState, Turn
from callpilot.server.assist.llm_prompt import build_messages
from callpilot.v1 import common_pb2, directory_pb2, events_pb2


def test_candidates_and_near_miss_orders_are_marked_unconfirmed() -> None:
    maria = directory_pb2.Customer(customer_id="C-1001", name="Maria Garcia", email="maria@example.com")
    state = ConversationState(
        call_id="c",
        turns=[Turn("s1", common_pb2.SPEAKER_ROLE_CUSTOMER, "this is Maria Garsha, order 7891")],
        candidates=[
            events_pb2.CustomerCandidate(
                customer=maria, score=95.7, reason='name "Maria Garsha" sounds like "Maria Garcia"'
            )
        ],
        order_candidates=[
            events_pb2.OrderCandidate(
                order=directory_pb2.Order(order_number="78901"), heard="7891", reason="one digit dropped"
            )
        ],
    )
    user = build_messages(AssistRequest("sg", state, state.turns[-1]))[1]["content"]
    assert "Customer: not identified yet." in user
    assert 'Possible caller, NOT confirmed: Maria Garcia (C-1001): name "Maria Garsha" sounds like' in user
    assert "heard as 7891 is not on file; it may be 78901 (one digit dropped)" in user
    assert "maria@example.com" not in user
