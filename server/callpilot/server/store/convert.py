"""Mapping between database rows and the contract's proto messages.

Kept apart from the queries so every place that returns, say, an Order
builds it the same way (money formatting, optional timestamps).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from callpilot.server.store.importer.normalize import format_cents
from callpilot.v1 import call_pb2, directory_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Row

POLICY_TYPES_BY_NAME: dict[str, directory_pb2.PolicyType.ValueType] = {
    "return": directory_pb2.POLICY_TYPE_RETURN,
    "refund": directory_pb2.POLICY_TYPE_REFUND,
    "warranty": directory_pb2.POLICY_TYPE_WARRANTY,
    "sla": directory_pb2.POLICY_TYPE_SLA,
}
POLICY_TYPE_NAMES: dict[int, str] = {value: name for name, value in POLICY_TYPES_BY_NAME.items()}


def to_timestamp(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def from_timestamp(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def now_utc() -> datetime:
    return datetime.now(UTC)


def customer(row: Row[Any]) -> directory_pb2.Customer:
    return directory_pb2.Customer(
        customer_id=row.customer_id,
        name=row.name,
        email=row.email,
        phone=row.phone,
        tier=row.tier,
        status=row.status,
    )


def order(row: Row[Any], items: Iterable[Row[Any]]) -> directory_pb2.Order:
    message = directory_pb2.Order(
        order_number=row.order_number,
        customer_id=row.customer_id,
        status=row.status,
        total=format_cents(row.total_cents),
        currency_code=row.currency_code,
        order_time=to_timestamp(row.order_time),
        items=[
            directory_pb2.OrderItem(
                sku=item.sku,
                name=item.name,
                quantity=item.quantity,
                unit_price=format_cents(item.unit_price_cents),
            )
            for item in items
        ],
    )
    if row.delivered_time is not None:
        message.delivered_time.CopyFrom(to_timestamp(row.delivered_time))
    return message


def ticket(row: Row[Any]) -> directory_pb2.Ticket:
    return directory_pb2.Ticket(
        ticket_id=row.ticket_id,
        customer_id=row.customer_id,
        subject=row.subject,
        status=row.status,
        create_time=to_timestamp(row.create_time),
    )


def policy(row: Row[Any]) -> directory_pb2.Policy:
    return directory_pb2.Policy(
        type=POLICY_TYPES_BY_NAME[row.policy_type],
        title=row.title,
        body=row.body,
    )


def call(row: Row[Any]) -> call_pb2.Call:
    message = call_pb2.Call(
        call_id=row.call_id,
        tenant_id=row.tenant_id,
        state=row.state,
        customer_id=row.customer_id,
        create_time=to_timestamp(row.create_time),
        end_reason=row.end_reason,
        last_sequence=row.last_sequence,
        summary=row.summary,
    )
    message.config.ParseFromString(row.config)
    if row.end_time is not None:
        message.end_time.CopyFrom(to_timestamp(row.end_time))
    return message
