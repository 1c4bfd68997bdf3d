"""The assistant's tools: directory lookups with a JSON-schema contract.

Every assistant (the local engine, an LLM with function calling) runs the
same four tools through this one class, so what an agent sees in a
`ToolCall` event is exactly what the suggestion was grounded in, and a CRM
calling the DirectoryService sees the same records. The schemas are plain
JSON Schema in the widely used function-calling shape; nothing here depends
on a model provider.

`ToolBox.run` never raises for a tool-level problem (unknown tool, bad
arguments, nothing found, the directory failing or timing out): the outcome is
a FAILED `ToolCall` whose `error` says what went wrong in words, which an LLM
can read and recover from and an agent can understand.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from callpilot.v1 import directory_pb2, events_pb2
from google.protobuf import json_format, struct_pb2
from google.protobuf.message import Message

from ..context.identify import customer_candidates
from ..directory import Directory, DirectoryWriter
from ..errors import CallpilotError

__all__ = ["POLICY_TYPES", "TOOL_SPECS", "ToolBox", "ToolError", "message_to_dict", "result_dict"]

log = logging.getLogger(__name__)

POLICY_TYPES: Mapping[str, directory_pb2.PolicyType.ValueType] = {
    "return": directory_pb2.POLICY_TYPE_RETURN,
    "refund": directory_pb2.POLICY_TYPE_REFUND,
    "warranty": directory_pb2.POLICY_TYPE_WARRANTY,
    "sla": directory_pb2.POLICY_TYPE_SLA,
}
"""Tool argument value -> directory policy type."""

_RELATED_LIMIT = 5

TOOL_SPECS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "lookup_customer",
            "description": (
                "Find the caller's customer record, with their recent orders and tickets. "
                "Give the customer id if known, else the email address or phone number, else the name. "
                "A name with no exact match returns `candidates` (similar-sounding customers) to confirm "
                "with the caller, not a customer."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "customer_id": {"type": "string", "description": "Customer id, e.g. C-1001."},
                    "email": {"type": "string", "description": "Email address on the account."},
                    "phone": {"type": "string", "description": "Phone number, any format."},
                    "name": {"type": "string", "description": "Full or partial name."},
                },
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_order_details",
            "description": "Status, dates, total and items of one order, by the order number the customer quotes.",
            "parameters": {
                "type": "object",
                "properties": {
                    "order_number": {"type": "string", "description": "Order number, e.g. 78901."},
                },
                "required": ["order_number"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "check_policy",
            "description": "The company's policy text for returns, refunds, warranty or service levels.",
            "parameters": {
                "type": "object",
                "properties": {
                    "policy_type": {"type": "string", "enum": list(POLICY_TYPES)},
                },
                "required": ["policy_type"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search_knowledge",
            "description": "Search the knowledge base (how-to and troubleshooting articles).",
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "What to look for, in a few words."},
                },
                "required": ["query"],
                "additionalProperties": False,
            },
        },
    },
]
"""Function-calling schemas of the read tools, in the order of `assist.base.TOOL_NAMES`."""

WRITE_TOOL_SPECS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "create_ticket",
            "description": (
                "Open a support ticket for the customer. This changes company records, so it is only "
                "proposed: it runs when the agent confirms it. Say in your suggestion what you prepared."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "customer_id": {"type": "string", "description": "The customer's id, e.g. C-1001."},
                    "subject": {"type": "string", "description": "One line: what the ticket is about."},
                },
                "required": ["customer_id", "subject"],
                "additionalProperties": False,
            },
        },
    },
]
"""Tools that change records: proposed as PENDING_CONFIRMATION, run on the agent's decision."""

WRITE_TOOLS = frozenset(spec["function"]["name"] for spec in WRITE_TOOL_SPECS)
AWAITING_CONFIRMATION = {"status": "awaiting_agent_confirmation"}


class ToolError(Exception):
    """A tool-level failure; its message becomes the ToolCall's `error`."""


def message_to_dict(message: Message) -> dict[str, Any]:
    """A proto record as JSON-ready dict, with the field names of the .proto."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def result_dict(call: events_pb2.ToolCall) -> dict[str, Any]:
    """A ToolCall's result as a plain dict (empty when it failed)."""
    if not call.HasField("result"):
        return {}
    return json_format.MessageToDict(call.result)


def _struct(value: Mapping[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    # A JSON round trip turns anything odd (tuples, numbers as keys) into what
    # Struct accepts and stringifies what JSON cannot hold.
    s.update(json.loads(json.dumps(value, default=str)))
    return s


def _string_arg(arguments: Mapping[str, Any], name: str, *, required: bool) -> str:
    value = arguments.get(name)
    if value is None or value == "":
        if required:
            raise ToolError(f"missing argument {name!r}")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ToolError(f"argument {name!r} must be a string")
    return str(value).strip()


class ToolBox:
    """Runs the assistant's tools against the directory."""

    specs: list[dict[str, Any]]

    def __init__(self, directory: Directory, *, timeout: float = 5.0) -> None:
        """`timeout`: seconds one tool may take before it fails, so a slow
        directory delays a suggestion by a bounded amount."""
        self._directory = directory
        self._timeout = timeout
        self.specs = TOOL_SPECS + WRITE_TOOL_SPECS
        self._tools: dict[str, Callable[[Mapping[str, Any]], Awaitable[dict[str, Any]]]] = {
            "lookup_customer": self._lookup_customer,
            "get_order_details": self._get_order_details,
            "check_policy": self._check_policy,
            "search_knowledge": self._search_knowledge,
            "create_ticket": self._create_ticket,
        }
        self._validators: dict[str, Callable[[Mapping[str, Any]], None]] = {
            "create_ticket": self._validate_create_ticket,
        }

    @staticmethod
    def requires_confirmation(name: str) -> bool:
        """True for tools that change records (they wait for the agent)."""
        return name in WRITE_TOOLS

    @property
    def names(self) -> list[str]:
        """The tool names `run` accepts."""
        return list(self._tools)

    async def run(
        self,
        name: str,
        arguments: dict[str, Any],
        *,
        trigger_segment_id: str = "",
        confirmed: bool = False,
        tool_call_id: str = "",
        caller_customer_id: str = "",
    ) -> events_pb2.ToolCall:
        """Run one tool and return its record, SUCCEEDED or FAILED.

        A write tool is only proposed (PENDING_CONFIRMATION, arguments checked,
        nothing changed) unless `confirmed`: the session passes that once the
        agent has confirmed the proposal, with the proposal's `tool_call_id`.

        `caller_customer_id`: the customer the call is with, once identified.
        Order details are then given for that customer's orders only, whoever
        asks (the built-in assistant or a language model): another customer's
        order, found by a misheard digit or a model's guess, must not reach
        the agent's screen as if it were the caller's. Before identification
        any order may be looked up; that is how a caller is found by order
        number.
        """
        call = events_pb2.ToolCall(
            tool_call_id=tool_call_id or f"tool-{uuid.uuid4().hex}",
            tool_name=name,
            trigger_segment_id=trigger_segment_id,
        )
        started = time.perf_counter()
        try:
            if not isinstance(arguments, Mapping):
                raise ToolError("arguments must be a JSON object")
            call.arguments.CopyFrom(_struct(arguments))
            tool = self._tools.get(name)
            if tool is None:
                raise ToolError(f"unknown tool {name!r}; available: {', '.join(self._tools)}")
            if name in WRITE_TOOLS and not confirmed:
                self._validators[name](arguments)
                call.result.CopyFrom(_struct(AWAITING_CONFIRMATION))
                call.status = events_pb2.TOOL_CALL_STATUS_PENDING_CONFIRMATION
                return call
            if name == "get_order_details":
                tool = functools.partial(self._get_order_details, caller=caller_customer_id)
            async with asyncio.timeout(self._timeout):
                result = await tool(arguments)
            call.result.CopyFrom(_struct(result))
            call.status = events_pb2.TOOL_CALL_STATUS_SUCCEEDED
        except ToolError as e:
            call.error = str(e)
            call.status = events_pb2.TOOL_CALL_STATUS_FAILED
        except TimeoutError:
            call.error = f"the directory did not answer within {self._timeout:g} s"
            call.status = events_pb2.TOOL_CALL_STATUS_FAILED
        except CallpilotError as e:
            call.error = e.message
            call.status = events_pb2.TOOL_CALL_STATUS_FAILED
        except Exception as e:
            log.warning("tool %s failed", name, exc_info=True)
            call.error = f"the directory failed: {type(e).__name__}"
            call.status = events_pb2.TOOL_CALL_STATUS_FAILED
        call.duration.FromNanoseconds(int((time.perf_counter() - started) * 1e9))
        return call

    async def run_json(
        self, name: str, arguments_json: str, *, trigger_segment_id: str = "", caller_customer_id: str = ""
    ) -> events_pb2.ToolCall:
        """`run` with the arguments as a JSON string, as language models produce
        them; malformed JSON is a FAILED call, not an exception."""
        try:
            arguments = json.loads(arguments_json or "{}")
        except ValueError as e:
            error = f"arguments are not valid JSON: {e}"
        else:
            if isinstance(arguments, dict):
                return await self.run(
                    name,
                    arguments,
                    trigger_segment_id=trigger_segment_id,
                    caller_customer_id=caller_customer_id,
                )
            error = "arguments must be a JSON object"
        return events_pb2.ToolCall(
            tool_call_id=f"tool-{uuid.uuid4().hex}",
            tool_name=name,
            trigger_segment_id=trigger_segment_id,
            error=error,
            status=events_pb2.TOOL_CALL_STATUS_FAILED,
        )

    # -- tools -----------------------------------------------------------------

    @staticmethod
    def _reject_unknown(arguments: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
        unknown = sorted(set(arguments) - set(allowed))
        if unknown:
            raise ToolError(
                f"unexpected argument(s) {', '.join(map(repr, unknown))}; expected {', '.join(allowed)}"
            )

    def _validate_create_ticket(self, arguments: Mapping[str, Any]) -> None:
        self._reject_unknown(arguments, ("customer_id", "subject"))
        _string_arg(arguments, "customer_id", required=True)
        subject = _string_arg(arguments, "subject", required=True)
        if len(subject) > 500:
            raise ToolError("subject must be at most 500 characters")
        if not isinstance(self._directory, DirectoryWriter):
            raise ToolError("this directory is read-only; tickets cannot be created here")

    async def _create_ticket(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        self._validate_create_ticket(arguments)
        assert isinstance(self._directory, DirectoryWriter)
        ticket = await self._directory.create_ticket(
            _string_arg(arguments, "customer_id", required=True),
            _string_arg(arguments, "subject", required=True),
        )
        return {"ticket": message_to_dict(ticket)}

    async def _lookup_customer(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        self._reject_unknown(arguments, ("customer_id", "email", "phone", "name"))
        customer_id = _string_arg(arguments, "customer_id", required=False)
        email = _string_arg(arguments, "email", required=False)
        phone = _string_arg(arguments, "phone", required=False)
        name = _string_arg(arguments, "name", required=False)
        others: list[directory_pb2.Customer] = []
        if customer_id:
            customer = await self._directory.get_customer(customer_id)
            what = f"id {customer_id!r}"
        elif email:
            customer = await self._directory.find_customer(email=email)
            what = f"email {email!r}"
        elif phone:
            customer = await self._directory.find_customer(phone=phone)
            what = f"phone {phone!r}"
        elif name:
            matches = await self._directory.search_customers(name, limit=_RELATED_LIMIT)
            customer, others = (matches[0], matches[1:]) if matches else (None, [])
            what = f"name {name!r}"
            if customer is None:
                # Names come from speech recognition: offer who it may have been, never take them.
                candidates = await customer_candidates(self._directory, name)
                if candidates:
                    return {
                        "candidates": [
                            {
                                "customer": message_to_dict(c.customer),
                                "score": round(c.score, 1),
                                "reason": c.reason,
                            }
                            for c in candidates
                        ],
                        "note": (
                            f"no customer is named exactly {name!r}; these sound similar. Confirm with the "
                            "caller (for example the email address on file) before using one."
                        ),
                    }
        else:
            raise ToolError("give one of customer_id, email, phone or name")
        if customer is None:
            raise ToolError(f"no customer found with {what}")
        orders = await self._directory.customer_orders(customer.customer_id, limit=_RELATED_LIMIT)
        tickets = await self._directory.customer_tickets(customer.customer_id, limit=_RELATED_LIMIT)
        result: dict[str, Any] = {
            "customer": message_to_dict(customer),
            "orders": [message_to_dict(o) for o in orders],
            "tickets": [message_to_dict(t) for t in tickets],
        }
        if others:
            result["other_matches"] = [message_to_dict(c) for c in others]
        return result

    async def _get_order_details(self, arguments: Mapping[str, Any], caller: str = "") -> dict[str, Any]:
        self._reject_unknown(arguments, ("order_number",))
        number = _string_arg(arguments, "order_number", required=True)
        order = await self._directory.get_order(number)
        if caller and (order is None or order.customer_id != caller):
            # The same answer whether the order is someone else's or does not
            # exist: nothing about other customers' orders leaks through it.
            raise ToolError(
                f"order {number!r} is not one of the caller's orders ({caller}); "
                "check the number with the caller"
            )
        if order is None:
            raise ToolError(f"no order found with number {number!r}")
        return {"order": message_to_dict(order)}

    async def _check_policy(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        self._reject_unknown(arguments, ("policy_type",))
        kind = _string_arg(arguments, "policy_type", required=True).lower()
        policy_type = POLICY_TYPES.get(kind)
        if policy_type is None:
            raise ToolError(f"policy_type must be one of {', '.join(POLICY_TYPES)}, not {kind!r}")
        policy = await self._directory.get_policy(policy_type)
        if policy is None:
            raise ToolError(f"there is no {kind} policy on file")
        return {"policy": message_to_dict(policy)}

    async def _search_knowledge(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        self._reject_unknown(arguments, ("query",))
        query = _string_arg(arguments, "query", required=True)
        hits = await self._directory.search_knowledge(query, limit=3)
        if not hits:
            raise ToolError(f"no knowledge-base article matches {query!r}")
        return {
            "hits": [
                {
                    "article_id": h.article.article_id,
                    "title": h.article.title,
                    "snippet": h.snippet or h.article.body[:300],
                    "score": round(h.score, 4),
                    "tags": list(h.article.tags),
                }
                for h in hits
            ]
        }
