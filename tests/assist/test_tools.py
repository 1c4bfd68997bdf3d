"""The assistant's tools run through the directory and never raise."""

from __future__ import annotations

from typing import Any

import pytest
from callpilot.server.assist.base import TOOL_NAMES
from callpilot.server.assist.tools import ToolBox, result_dict
from callpilot.server.errors import NotFound
from callpilot.v1 import directory_pb2, events_pb2
from fakes.directory import FakeDirectory
from google.protobuf import json_format

OK = events_pb2.TOOL_CALL_STATUS_SUCCEEDED
FAILED = events_pb2.TOOL_CALL_STATUS_FAILED


def test_specs_are_function_calling_schemas(directory: FakeDirectory) -> None:
    specs = ToolBox(directory).specs
    assert [s["function"]["name"] for s in specs] == [*TOOL_NAMES, "create_ticket"]
    for spec in specs:
        assert spec["type"] == "function"
        params = spec["function"]["parameters"]
        assert params["type"] == "object" and params["properties"]
        assert spec["function"]["description"]
    by_name = {s["function"]["name"]: s["function"]["parameters"] for s in specs}
    assert set(by_name["lookup_customer"]["properties"]) == {"customer_id", "email", "phone", "name"}
    assert by_name["get_order_details"]["required"] == ["order_number"]
    assert by_name["check_policy"]["properties"]["policy_type"]["enum"] == [
        "return",
        "refund",
        "warranty",
        "sla",
    ]
    assert by_name["search_knowledge"]["required"] == ["query"]


async def test_get_order_details(directory: FakeDirectory) -> None:
    call = await ToolBox(directory).run(
        "get_order_details", {"order_number": "#78-901"}, trigger_segment_id="s1"
    )
    assert call.status == OK and not call.error
    assert call.tool_name == "get_order_details" and call.trigger_segment_id == "s1"
    assert json_format.MessageToDict(call.arguments) == {"order_number": "#78-901"}
    order = result_dict(call)["order"]
    assert order["order_number"] == "78901" and order["total"] == "129.99"
    assert order["delivered_time"].startswith("2026-11-02")
    assert order["items"][0]["name"] == "Wireless Headphones"
    assert call.HasField("duration") and call.tool_call_id


async def test_once_the_caller_is_known_only_their_orders_are_shown(directory: FakeDirectory) -> None:
    tools = ToolBox(directory)
    own = await tools.run("get_order_details", {"order_number": "78901"}, caller_customer_id="C-1001")
    assert own.status == OK and result_dict(own)["order"]["customer_id"] == "C-1001"
    # James Chen's order, asked for on Maria Garcia's call (a misheard digit, a model's guess).
    other = await tools.run("get_order_details", {"order_number": "55555"}, caller_customer_id="C-1001")
    missing = await tools.run("get_order_details", {"order_number": "99999"}, caller_customer_id="C-1001")
    assert other.status == FAILED and not other.HasField("result")
    assert "not one of the caller's orders" in other.error and "55555" in other.error
    # Someone else's order and no order at all read the same: nothing leaks about the former.
    assert missing.error.replace("99999", "55555") == other.error
    # The same through the language model's path (arguments as JSON).
    via_json = await tools.run_json(
        "get_order_details", '{"order_number": "55555"}', caller_customer_id="C-1001"
    )
    assert via_json.status == FAILED and via_json.error == other.error
    # Before the caller is identified, an order number is how they are found.
    anyone = await tools.run("get_order_details", {"order_number": "55555"})
    assert anyone.status == OK and result_dict(anyone)["order"]["customer_id"] == "C-1002"


@pytest.mark.parametrize(
    "arguments",
    [
        {"customer_id": "C-1001"},
        {"email": "MARIA.GARCIA@example.com"},
        {"phone": "555-010-0101"},
        {"name": "maria"},
    ],
)
async def test_lookup_customer(directory: FakeDirectory, arguments: dict[str, Any]) -> None:
    call = await ToolBox(directory).run("lookup_customer", arguments)
    assert call.status == OK, call.error
    result = result_dict(call)
    assert result["customer"]["customer_id"] == "C-1001"
    assert [o["order_number"] for o in result["orders"]] == ["78901"]
    assert [t["ticket_id"] for t in result["tickets"]] == ["T-5001"]


async def test_check_policy_and_search_knowledge(directory: FakeDirectory) -> None:
    box = ToolBox(directory)
    call = await box.run("check_policy", {"policy_type": "Return"})
    assert call.status == OK
    assert "30 days" in result_dict(call)["policy"]["body"]
    call = await box.run("search_knowledge", {"query": "how to pair headphones bluetooth"})
    assert call.status == OK
    hits = result_dict(call)["hits"]
    assert hits[0]["article_id"] == "KB-001" and hits[0]["title"] and hits[0]["snippet"]


@pytest.mark.parametrize(
    ("name", "arguments", "error"),
    [
        ("delete_everything", {}, "unknown tool"),
        ("get_order_details", {}, "missing argument 'order_number'"),
        ("get_order_details", {"order_number": ["78901"]}, "must be a string"),
        ("get_order_details", {"order_number": "12345"}, "no order found with number '12345'"),
        ("get_order_details", {"order_number": "78901", "force": True}, "unexpected argument"),
        ("check_policy", {"policy_type": "privacy"}, "policy_type must be one of"),
        ("check_policy", {"policy_type": "sla"}, "no sla policy"),
        ("lookup_customer", {}, "give one of"),
        ("lookup_customer", {"email": "nobody@example.com"}, "no customer found with email"),
        ("search_knowledge", {"query": "zzz"}, "no knowledge-base article"),
    ],
)
async def test_tool_level_problems_are_failed_calls(
    directory: FakeDirectory, name: str, arguments: dict[str, Any], error: str
) -> None:
    call = await ToolBox(directory).run(name, arguments)
    assert call.status == FAILED
    assert error in call.error
    assert not call.HasField("result")
    assert call.tool_name == name and call.tool_call_id


async def test_non_object_arguments_and_bad_json(directory: FakeDirectory) -> None:
    box = ToolBox(directory)
    call = await box.run("get_order_details", "78901")  # type: ignore[arg-type]
    assert call.status == FAILED and "JSON object" in call.error
    call = await box.run_json("get_order_details", '{"order_number": ')
    assert call.status == FAILED and "not valid JSON" in call.error
    call = await box.run_json("get_order_details", '{"order_number": "78901"}')
    assert call.status == OK


async def test_directory_errors_and_timeouts_are_failed_calls(directory: FakeDirectory) -> None:
    directory.fail = RuntimeError("connection refused")
    call = await ToolBox(directory).run("get_order_details", {"order_number": "78901"})
    assert call.status == FAILED and "directory failed" in call.error
    directory.fail = NotFound("order 78901 is archived")
    call = await ToolBox(directory).run("get_order_details", {"order_number": "78901"})
    assert call.status == FAILED and call.error == "order 78901 is archived"
    directory.fail = None
    directory.delay = 1.0
    call = await ToolBox(directory, timeout=0.01).run("get_order_details", {"order_number": "78901"})
    assert call.status == FAILED and "did not answer" in call.error


async def test_tool_call_ids_are_unique(directory: FakeDirectory) -> None:
    box = ToolBox(directory)
    ids = {(await box.run("check_policy", {"policy_type": "refund"})).tool_call_id for _ in range(20)}
    assert len(ids) == 20


class _WritableDirectory(FakeDirectory):
    """The fake directory plus the one write the assistant may propose."""

    def __init__(self) -> None:
        super().__init__()
        self.tickets_created: list[tuple[str, str]] = []

    async def create_ticket(self, customer_id: str, subject: str) -> directory_pb2.Ticket:
        self.tickets_created.append((customer_id, subject))
        return directory_pb2.Ticket(
            ticket_id="T-NEW", customer_id=customer_id, subject=subject, status="open"
        )


async def test_write_tool_is_only_proposed_until_confirmed() -> None:
    directory = _WritableDirectory()
    box = ToolBox(directory)
    assert box.requires_confirmation("create_ticket") and not box.requires_confirmation("get_order_details")
    args = {"customer_id": "C-1001", "subject": "Headphones crackle"}
    proposed = await box.run("create_ticket", args, trigger_segment_id="seg-0001")
    assert proposed.status == events_pb2.TOOL_CALL_STATUS_PENDING_CONFIRMATION
    assert directory.tickets_created == []
    ran = await box.run("create_ticket", args, confirmed=True, tool_call_id=proposed.tool_call_id)
    assert ran.status == OK and ran.tool_call_id == proposed.tool_call_id
    assert result_dict(ran)["ticket"]["ticket_id"] == "T-NEW"
    assert directory.tickets_created == [("C-1001", "Headphones crackle")]


async def test_write_tool_bad_arguments_and_read_only_directory(directory: FakeDirectory) -> None:
    writable = ToolBox(_WritableDirectory())
    missing = await writable.run("create_ticket", {"customer_id": "C-1001"})
    assert missing.status == FAILED and "subject" in missing.error
    read_only = await ToolBox(directory).run("create_ticket", {"customer_id": "C-1001", "subject": "x"})
    assert read_only.status == FAILED and "read-only" in read_only.error
