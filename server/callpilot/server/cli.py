"""Server-side commands behind `callpilot serve` and `callpilot db import`.

They live with the server so that the SDK installs without the server's
dependencies; the SDK's CLI imports this module only when asked to.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from typing import TYPE_CHECKING

from callpilot.server import logs
from callpilot.server.config import Settings
from callpilot.server.errors import ConfigError
from callpilot.server.providers.registry import assistant_provider, stt_provider
from callpilot.server.stt.base import STTError

if TYPE_CHECKING:
    from callpilot.server.store.importer import DataImportError


def _settings(args: argparse.Namespace) -> Settings | None:
    """The settings (environment, then the command's options); None after printing why not.

    Provider names given as options are checked against the provider
    registry (the one list of names), so the error names the option.
    """
    try:
        if getattr(args, "stt", None):
            stt_provider(args.stt, setting="--stt")
        if getattr(args, "assistant", None):
            assistant_provider(args.assistant, setting="--assistant")
        overrides = {
            name: getattr(args, name, None) for name in ("host", "port", "database_url", "stt", "assistant")
        }
        return Settings.from_env(**overrides)
    except ConfigError as exc:
        print(f"callpilot: {exc}", file=sys.stderr)
        return None


def serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return 2
    if (taken := _port_problem(settings.host, settings.port)) is not None:
        print(f"callpilot: {taken}", file=sys.stderr)
        return 1
    logs.configure(settings.log_level, settings.log_json)
    from callpilot.server.app import run

    try:
        run(settings)
    except ConfigError as exc:
        print(f"callpilot: {exc}", file=sys.stderr)
        return 2
    except (OSError, STTError) as exc:
        # A provider that cannot start (no CUDA device, Redis down, port taken): one line, no traceback.
        print(f"callpilot: {exc}", file=sys.stderr)
        return 1
    return 0


def _port_problem(host: str, port: int) -> str | None:
    """Why `host:port` cannot be listened on, or None; checked before the model loads.

    A plain bind (SO_REUSEADDR, as gRPC, but not SO_REUSEPORT) fails on a port
    another program or another `callpilot serve` holds, so a person gets one
    line at once instead of a gRPC core log and a traceback after the model
    has loaded. The server's own bind still reports the rare race (app.py).
    """
    if port == 0:
        return None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            return (
                f"cannot listen on {host}:{port}: {exc.strerror or exc} "
                "(another program or another callpilot serve holds it; set CALLPILOT_PORT or --port)"
            )
    return None


def db_import(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return 2
    try:
        text = args.file.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"callpilot: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    from callpilot.server.store.importer import DataImportError, parse_json

    try:
        doc = parse_json(text)  # rejects deep nesting and repeated keys, which json.loads lets through
    except DataImportError as exc:
        return _rejected(str(args.file), exc)
    return asyncio.run(_import(settings, doc, str(args.file)))


def _rejected(name: str, exc: DataImportError) -> int:
    """Name every problem, one per line: a person fixes the whole file in one pass."""
    count = len(exc.violations)
    print(
        f"callpilot: {name} was not imported (nothing was changed): "
        f"{count} problem{'s' if count != 1 else ''}:",
        file=sys.stderr,
    )
    for line in exc.lines():
        print(f"  {line}", file=sys.stderr)
    return 2


async def _import(settings: Settings, doc: object, name: str) -> int:
    from callpilot.server.store import DataImportError, Store

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = await Store.open(settings.effective_database_url, seed_demo=False, tenant_id=settings.tenant_id)
    try:
        report = await store.import_data(doc)
    except DataImportError as exc:
        return _rejected(name, exc)
    finally:
        await store.close()
    print(f"imported {report}")
    return 0
