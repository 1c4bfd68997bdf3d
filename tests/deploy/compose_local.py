"""docker-compose.yml turned into local processes, for tests/deploy/test_compose_topology.py.

Each service's `command` and `environment` are read from the compose file,
with compose's ${VAR:-default} / ${VAR:?error} interpolation, and then
*localised*, which is the only thing changed: service hostnames
(`postgres`, `redis`, the `server` alias) become 127.0.0.1 addresses of real
local processes, listen addresses become 127.0.0.1 and ports 0 (every
command prints the port it bound). `localise` raises on any hostname it does
not know, so a new service in the compose file cannot silently be skipped.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from support import ROOT, CallpilotProcess, free_port

COMPOSE = ROOT / "docker-compose.yml"
_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::([-?])([^}]*))?\}")


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} substitution."""

    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if env.get(name):
            return env[name]
        if op == "?":
            raise KeyError(f"{name}: {arg}")
        return arg or ""

    return _VAR.sub(sub, value)


def load() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict)
    return doc


@dataclass
class Localiser:
    """Where the compose services' names point on this machine."""

    database_url: str  # the throw-away PostgreSQL database standing for the `postgres` service
    redis_url: str  # the throw-away redis-server standing for the `redis` service
    servers: list[str] = field(default_factory=list)  # host:port of each started server replica

    def value(self, name: str, value: str) -> str:
        """One environment value with compose hostnames replaced."""
        if value.startswith("postgresql+asyncpg://"):
            url = urllib.parse.urlsplit(value)
            assert url.hostname == "postgres", value
            return self.database_url
        if value.startswith(("redis://", "rediss://")):
            url = urllib.parse.urlsplit(value)
            assert url.hostname == "redis", value
            local = urllib.parse.urlsplit(self.redis_url)
            return urllib.parse.urlunsplit(url._replace(netloc=local.netloc))
        if name == "CALLPILOT_METRICS_PORT":
            return str(free_port())  # two replicas on one host cannot share it
        return value

    def environment(self, service: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, str]:
        return {k: self.value(k, interpolate(v, env)) for k, v in service.get("environment", {}).items()}

    def command(self, service: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
        """The service's argv with --host 127.0.0.1, --port 0 and --server the local replicas."""
        argv = [interpolate(part, env) for part in service["command"]]
        out: list[str] = []
        it = iter(argv)
        for part in it:
            out.append(part)
            if part == "--host":
                next(it)
                out.append("127.0.0.1")
            elif part == "--port":
                next(it)
                out.append("0")
            elif part == "--server":
                out.append(self.target(next(it)))
        return out

    def target(self, target: str) -> str:
        """`dns:///server:PORT` (every replica) becomes gRPC's static `ipv4:` list of the local replicas."""
        host = target.removeprefix("dns:///").rsplit(":", 1)[0]
        assert host == "server", f"unknown gRPC target {target!r} in the compose file"
        assert self.servers, "start the servers before the gateway"
        return "ipv4:" + ",".join(self.servers)


class ComposeProcess(CallpilotProcess):
    """A compose service's `callpilot …` command as a local process."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        assert argv[0] == "callpilot", argv
        super().__init__(env, log_path)
        self.argv = argv

    def command(self) -> list[str]:
        return self.argv[1:]
