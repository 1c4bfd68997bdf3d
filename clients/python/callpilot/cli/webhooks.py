"""`callpilot webhooks create|list|enable|disable|delete|deliveries`: over the SDK, like `calls`."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable

from callpilot.cli.render import to_json
from callpilot.client import AsyncCallpilot
from callpilot.client.webhooks import EVENT_TYPES, Webhooks
from callpilot.v1 import webhook_service_pb2 as pb


def add_parser(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    server_default: str,
    client_options: Callable[[argparse.ArgumentParser], None],
) -> None:
    hooks = sub.add_parser("webhooks", help="manage outbound webhook endpoints (over the API)")
    hooks_sub = hooks.add_subparsers(
        dest="webhooks_command", required=True, metavar="create|list|enable|disable|delete|deliveries"
    )
    create = hooks_sub.add_parser("create", help="register an endpoint and print its signing secret once")
    create.add_argument("--url", required=True, help="where to POST events (http:// or https://)")
    create.add_argument(
        "--events",
        required=True,
        help=f"comma-separated event types: {','.join(EVENT_TYPES)}",
    )
    create.add_argument("--description", default="")
    listing = hooks_sub.add_parser("list", help="list endpoints (never their secrets)")
    enable = hooks_sub.add_parser("enable", help="enable an endpoint; its pending deliveries resume")
    enable.add_argument("endpoint_id")
    disable = hooks_sub.add_parser("disable", help="stop delivering to an endpoint (deliveries wait)")
    disable.add_argument("endpoint_id")
    delete = hooks_sub.add_parser("delete", help="delete an endpoint and its deliveries")
    delete.add_argument("endpoint_id")
    deliveries = hooks_sub.add_parser("deliveries", help="an endpoint's deliveries and their attempts")
    deliveries.add_argument("endpoint_id")
    deliveries.add_argument("--limit", type=int, default=50)
    for p in (create, listing, enable, disable, delete, deliveries):
        p.add_argument("--server", default=server_default, help="host:port (default $CALLPILOT_SERVER)")
        p.add_argument("--json", action="store_true", help="canonical proto3 JSON")
        client_options(p)


def _describe(e: pb.WebhookEndpoint) -> str:
    state = "enabled" if e.enabled else f"disabled ({e.disabled_reason})"
    return f"{e.endpoint_id}  {e.url}  [{','.join(e.event_types)}]  {state}"


def _state(value: int) -> str:
    return pb.WebhookDeliveryState.Name(value).removeprefix("WEBHOOK_DELIVERY_STATE_").lower()  # type: ignore[arg-type]


async def cmd_webhooks(
    args: argparse.Namespace, connect: Callable[[argparse.Namespace], Awaitable[AsyncCallpilot]]
) -> int:
    client = await connect(args)
    try:
        hooks = Webhooks(client)
        command = args.webhooks_command
        if command == "create":
            events = [e.strip() for e in args.events.split(",") if e.strip()]
            endpoint, secret = await hooks.create(args.url, events, description=args.description)
            if args.json:
                print(to_json(pb.CreateWebhookEndpointResponse(endpoint=endpoint, secret=secret)))
            else:
                print(_describe(endpoint))
                print(f"secret: {secret}  (shown only now; give it to your receiver's verifier)")
        elif command == "list":
            for endpoint in await hooks.list():
                print(to_json(endpoint) if args.json else _describe(endpoint))
        elif command in ("enable", "disable"):
            endpoint = await hooks.update(args.endpoint_id, enabled=command == "enable")
            print(to_json(endpoint) if args.json else _describe(endpoint))
        elif command == "delete":
            await hooks.delete(args.endpoint_id)
            print(f"deleted {args.endpoint_id}")
        else:
            for d in await hooks.deliveries(args.endpoint_id, max(1, min(args.limit, 200))):
                if args.json:
                    print(to_json(d))
                    continue
                print(f"{d.delivery_id}  {d.event_type}  call {d.call_id}  {_state(d.state)}")
                for a in d.attempts:
                    outcome = f"HTTP {a.http_status}" if a.http_status else "no response"
                    error = f" ({a.error})" if a.error else ""
                    print(f"    {a.time.ToJsonString()}  {outcome}{error}  {a.duration_ms} ms")
                if d.HasField("next_attempt_time"):
                    print(f"    next attempt {d.next_attempt_time.ToJsonString()}")
        return 0
    finally:
        await client.close()
