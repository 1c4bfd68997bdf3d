"""`callpilot`: run the server, stream a call, watch calls, import data.

Every failure is one line on stderr and a non-zero exit: 2 for bad
arguments or input, 3 when the server cannot be reached, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import grpc
from callpilot.cli import webhooks as webhooks_cli
from callpilot.cli.render import EventPrinter, describe_call, to_json
from callpilot.client import AsyncCallpilot, AudioSourceError, CallpilotError, WavFile
from callpilot.v1 import call_pb2, common_pb2

EXIT_ERROR, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3
ROLES = {"customer": common_pb2.SPEAKER_ROLE_CUSTOMER, "agent": common_pb2.SPEAKER_ROLE_AGENT}


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def _server_default() -> str:
    return os.environ.get("CALLPILOT_SERVER", "127.0.0.1:50051")


def _roles(value: str) -> tuple[int, int]:
    parts = [p.strip().lower() for p in value.split(",")]
    if len(parts) != 2 or any(p not in ROLES for p in parts):
        raise argparse.ArgumentTypeError("expected two roles such as 'agent,customer'")
    return ROLES[parts[0]], ROLES[parts[1]]


def _hint(value: str) -> call_pb2.CustomerHint:
    if "@" in value:
        return call_pb2.CustomerHint(email=value)
    if sum(ch.isdigit() for ch in value) >= 7 and not value.upper().startswith("C-"):
        return call_pb2.CustomerHint(phone=value)
    return call_pb2.CustomerHint(customer_id=value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callpilot", description="Callpilot: a real-time copilot for contact-center agents."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the gRPC server (settings from CALLPILOT_* variables)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 50051)")
    serve.add_argument("--database-url", help="SQLAlchemy async URL (default: a SQLite file in the data dir)")
    # The server checks provider names against its registry (the one list of them).
    serve.add_argument(
        "--stt", metavar="NAME", help="speech-to-text engine (an unknown name lists the valid ones)"
    )
    serve.add_argument(
        "--assistant", metavar="NAME", help="assistant engine (an unknown name lists the valid ones)"
    )

    call = sub.add_parser("call", help="stream a WAV file as a call and print its events live")
    call.add_argument("file", type=Path, help="a WAV file: 16-bit PCM, μ-law or A-law (G.711), 8-48 kHz")
    call.add_argument(
        "--server",
        default=_server_default(),
        help="host:port, or https://host:port for TLS (default $CALLPILOT_SERVER or 127.0.0.1:50051)",
    )
    _client_options(call)
    call.add_argument("--fast", action="store_true", help="send as fast as possible instead of in real time")
    call.add_argument("--json", action="store_true", help="one event per line, canonical proto3 JSON")
    call.add_argument(
        "--role", choices=sorted(ROLES), default="customer", help="speaker of a mono file (default customer)"
    )
    call.add_argument(
        "--stereo-roles",
        type=_roles,
        default=None,
        metavar="LEFT,RIGHT",
        help="speakers of a stereo file's channels (default agent,customer)",
    )
    call.add_argument("--customer-hint", type=_hint, default=None, metavar="ID|PHONE|EMAIL")
    call.add_argument("--language", default="en")
    call.add_argument(
        "--hint", action="append", default=[], metavar="PHRASE", help="phrase hint (repeatable)"
    )

    watch = sub.add_parser("watch", help="print a call's events, replayed then live")
    watch.add_argument("call_id")
    watch.add_argument("--server", default=_server_default())
    _client_options(watch)
    watch.add_argument("--from-sequence", type=int, default=1)
    watch.add_argument("--json", action="store_true")

    calls = sub.add_parser("calls", help="list or show calls")
    calls_sub = calls.add_subparsers(dest="calls_command", required=True, metavar="list|show")
    calls_list = calls_sub.add_parser("list", help="list calls, newest first")
    calls_list.add_argument("--server", default=_server_default())
    _client_options(calls_list)
    calls_list.add_argument("--limit", type=int, default=20)
    calls_list.add_argument("--json", action="store_true")
    calls_show = calls_sub.add_parser("show", help="show a call with its transcript and suggestions")
    calls_show.add_argument("call_id")
    calls_show.add_argument("--server", default=_server_default())
    _client_options(calls_show)
    calls_show.add_argument("--json", action="store_true")

    db = sub.add_parser("db", help="database commands")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="import")
    db_import = db_sub.add_parser(
        "import", help="import customers, orders, tickets, policies and articles from JSON"
    )
    db_import.add_argument("file", type=Path)
    db_import.add_argument("--database-url", help="as for serve")

    keys = sub.add_parser("keys", help="create, list and revoke API keys (talks to the database)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="create|list|revoke")
    keys_create = keys_sub.add_parser("create", help="create a key and print its secret once")
    keys_create.add_argument("--tenant", required=True)
    keys_create.add_argument("--role", required=True, choices=["integrator", "agent", "admin"])
    keys_create.add_argument("--name", default="")
    keys_list = keys_sub.add_parser("list", help="list keys (never their secrets)")
    keys_list.add_argument("--tenant", default=None)
    keys_list.add_argument("--json", action="store_true")
    keys_revoke = keys_sub.add_parser("revoke", help="revoke a key by its id")
    keys_revoke.add_argument("key_id")
    for keys_parser in (keys_create, keys_list, keys_revoke):
        keys_parser.add_argument("--database-url", help="as for serve")

    webhooks_cli.add_parser(sub, _server_default(), _client_options)

    gateway = sub.add_parser("gateway", help="run the HTTP gateway (WebRTC, grpc-web, agent app)")
    gateway.add_argument("--host")
    gateway.add_argument("--port", type=int)
    gateway.add_argument(
        "--server", help="gRPC target of the Callpilot server (default $CALLPILOT_SERVER or 127.0.0.1:50051)"
    )
    gateway.add_argument(
        "--ice-loopback",
        action="store_true",
        default=None,
        help="offer only 127.0.0.1 ICE candidates (development and tests only; env CALLPILOT_ICE_LOOPBACK=1)",
    )
    return parser


def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api-key",
        default=None,
        help="API key or token sent as 'authorization: Bearer' (default $CALLPILOT_API_KEY)",
    )
    parser.add_argument("--tls", action="store_true", default=None, help="use TLS (implied by https://)")
    parser.add_argument("--ca-file", type=Path, default=None, help="PEM CA bundle that signed the server")


async def _connect(args: argparse.Namespace) -> AsyncCallpilot:
    target = args.server
    client = AsyncCallpilot(target, api_key=args.api_key, tls=args.tls, ca_file=args.ca_file)
    try:
        await client.wait_ready(timeout=5.0)
    except CallpilotError:
        await client.close()
        raise CliError(
            f"cannot reach a Callpilot server at {target} (is `callpilot serve` running?)", EXIT_UNREACHABLE
        ) from None
    return client


async def cmd_call(args: argparse.Namespace) -> int:
    try:
        kwargs: dict[str, object] = {"mono_role": ROLES[args.role], "realtime": not args.fast}
        if args.stereo_roles:
            kwargs["channel_roles"] = args.stereo_roles
        source = WavFile(args.file, **kwargs)  # type: ignore[arg-type]
    except AudioSourceError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    config = call_pb2.CallConfig(language_code=args.language, phrase_hints=args.hint)
    if args.customer_hint is not None:
        config.customer_hint.CopyFrom(args.customer_hint)
    client = await _connect(args)
    printer = EventPrinter(json_lines=args.json)
    try:
        async with client.stream_call(source, config) as call:
            async for event in call:
                printer.print(event)
    finally:
        await client.close()
    return 0


async def cmd_watch(args: argparse.Namespace) -> int:
    client = await _connect(args)
    printer = EventPrinter(json_lines=args.json)
    try:
        async for event in client.watch_call(args.call_id, from_sequence=args.from_sequence):
            printer.print(event)
    finally:
        await client.close()
    return 0


async def cmd_calls(args: argparse.Namespace) -> int:
    client = await _connect(args)
    try:
        if args.calls_command == "list":
            page = await client.list_calls(page_size=max(1, min(args.limit, 100)))
            for call in page.calls:
                print(to_json(call) if args.json else describe_call(call))
            return 0
        response = await client.get_call(args.call_id)
        if args.json:
            print(to_json(response))
            return 0
        print(describe_call(response.call))
        for seg in response.transcript:
            role = "customer" if seg.role == common_pb2.SPEAKER_ROLE_CUSTOMER else "agent"
            print(f"  [{role}] {seg.text}")
        for tool in response.tool_calls:
            print(f"  tool {tool.tool_name}: {'ok' if not tool.error else tool.error}")
        for s in response.suggestions:
            mark = " (superseded)" if s.superseded else ""
            print(f"  suggestion{mark}: {s.suggestion.text}")
        if response.call.summary:
            print(f"  summary: {response.call.summary}")
        return 0
    finally:
        await client.close()


def _server_module() -> object:
    try:
        from callpilot.server import cli as server_cli
    except ImportError:
        raise CliError(
            "this command needs the Callpilot server: pip install callpilot-server (the SDK alone only talks to a server)",
            EXIT_USAGE,
        ) from None
    return server_cli


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            return _server_module().serve(args)  # type: ignore[attr-defined, no-any-return]
        if args.command == "db":
            return _server_module().db_import(args)  # type: ignore[attr-defined, no-any-return]
        if args.command == "keys":
            _server_module()
            keys_cli = importlib.import_module("callpilot.server.keys_cli")
            return keys_cli.keys_command(args)  # type: ignore[no-any-return]
        if args.command == "gateway":
            try:
                gateway_cli = importlib.import_module("callpilot.gateway.cli")
            except ImportError:
                raise CliError(
                    "the gateway is not installed: pip install callpilot-gateway", EXIT_USAGE
                ) from None
            return gateway_cli.run(args)  # type: ignore[no-any-return]
        if args.command == "webhooks":
            return asyncio.run(webhooks_cli.cmd_webhooks(args, _connect))
        runner = {"call": cmd_call, "watch": cmd_watch, "calls": cmd_calls}[args.command]
        return asyncio.run(runner(args))
    except CliError as exc:
        print(f"callpilot: {exc}", file=sys.stderr)
        return exc.code
    except CallpilotError as exc:
        hint = ""
        if exc.code == grpc.StatusCode.UNAUTHENTICATED:
            hint = " (pass --api-key or set CALLPILOT_API_KEY; keys come from `callpilot keys create`)"
        print(f"callpilot: {exc}{hint}", file=sys.stderr)
        unreachable = exc.code == grpc.StatusCode.UNAVAILABLE
        return (
            EXIT_UNREACHABLE
            if unreachable
            else EXIT_USAGE
            if exc.code == grpc.StatusCode.INVALID_ARGUMENT
            else EXIT_ERROR
        )
    except KeyboardInterrupt:
        print("callpilot: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
