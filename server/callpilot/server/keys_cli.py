"""`callpilot keys create|list|revoke`: API keys, managed next to the database.

Like `callpilot db import`, these commands talk to the database directly
(`CALLPILOT_DATABASE_URL` or `--database-url`): they are what an operator
runs to bootstrap the first keys, before any key exists to call an RPC with.
The secret is printed once, on stdout alone, so it can be captured by a
script (`KEY=$(callpilot keys create …)`); everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from callpilot.server.auth import Role
from callpilot.server.auth.keys import ApiKey, ApiKeys
from callpilot.server.config import Settings
from callpilot.server.errors import ConfigError


def _describe(key: ApiKey) -> dict[str, str]:
    return {
        "key_id": key.key_id,
        "tenant": key.tenant_id,
        "role": key.role.value,
        "name": key.name,
        "created": key.create_time.isoformat(timespec="seconds"),
        "last_used": key.last_used_time.isoformat(timespec="seconds") if key.last_used_time else "",
        "revoked": key.revoke_time.isoformat(timespec="seconds") if key.revoke_time else "",
    }


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    from callpilot.server.store import Store

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = await Store.open(settings.effective_database_url, seed_demo=False, tenant_id=settings.tenant_id)
    try:
        keys = ApiKeys(store)
        if args.keys_command == "create":
            try:
                role = Role.parse(args.role)
                record, secret = await keys.create(tenant_id=args.tenant, role=role, name=args.name or "")
            except ValueError as exc:
                print(f"callpilot: {exc}", file=sys.stderr)
                return 2
            print(
                f"created key {record.key_id} ({role.value} of tenant {record.tenant_id}); "
                "the secret below is shown once: store it now",
                file=sys.stderr,
            )
            print(secret)
            return 0
        if args.keys_command == "list":
            listed = [_describe(k) for k in await keys.list(args.tenant)]
            if args.json:
                for item in listed:
                    print(json.dumps(item))
            else:
                for item in listed:
                    state = f"revoked {item['revoked']}" if item["revoked"] else "active"
                    used = item["last_used"] or "never used"
                    print(
                        f"{item['key_id']}  {item['tenant']:<16} {item['role']:<10} {state:<28} "
                        f"{used:<25} {item['name']}"
                    )
            return 0
        if not await keys.revoke(args.key_id):
            print(f"callpilot: no key {args.key_id!r}", file=sys.stderr)
            return 1
        print(f"revoked key {args.key_id}", file=sys.stderr)
        return 0
    finally:
        await store.close()


def keys_command(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env(database_url=getattr(args, "database_url", None))
    except ConfigError as exc:
        print(f"callpilot: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_run(settings, args))
