"""docker-compose.yml, checked without Docker: its shape, and its commands and settings against the code.

Docker cannot run here, so the file is validated against a schema of the
compose subset it uses (written below, no download), and every service's
command is parsed by the real `callpilot` argument parser, every
CALLPILOT_* variable must be one the code reads, and the resolved
environment must pass the real settings validation.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest
import yaml
from callpilot.cli.main import build_parser
from callpilot.gateway.config import GatewaySettings
from callpilot.gateway.config import env_name as gateway_env_name
from callpilot.server.config import Settings, env_names
from support import ROOT

COMPOSE = ROOT / "docker-compose.yml"
SERVERS = ("server-a", "server-b")

_STRINGS = {"type": "array", "items": {"type": "string"}, "minItems": 1}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["services"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "services": {"type": "object", "additionalProperties": {"$ref": "#/$defs/service"}},
        "volumes": {"type": "object", "additionalProperties": {"type": ["object", "null"]}},
    },
    "$defs": {
        "duration": {"type": "string", "pattern": r"^[0-9]+(ms|s|m|h)$"},
        "service": {
            "type": "object",
            "additionalProperties": False,
            "anyOf": [{"required": ["image"]}, {"required": ["build"]}],
            "required": ["restart"],
            # Long-running services have a health check; a one-shot (`restart: "no"`) need not.
            "if": {"properties": {"restart": {"const": "no"}}},
            "else": {"required": ["healthcheck"]},
            "properties": {
                "image": {"type": "string"},
                "build": {
                    "type": "object",
                    "required": ["context"],
                    "additionalProperties": False,
                    "properties": {"context": {"type": "string"}, "dockerfile": {"type": "string"}},
                },
                "command": _STRINGS,
                # A map, never the list form: the checks below read it as one.
                "environment": {"type": "object", "additionalProperties": {"type": "string"}},
                "ports": {
                    "type": "array",
                    "items": {"type": "string", "pattern": r"^[0-9.:\-]+(/(tcp|udp))?$"},
                },
                "volumes": _STRINGS,
                "networks": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"aliases": _STRINGS},
                    },
                },
                "depends_on": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "required": ["condition"],
                        "additionalProperties": False,
                        "properties": {"condition": {"enum": ["service_healthy", "service_started"]}},
                    },
                },
                "healthcheck": {
                    "type": "object",
                    "required": ["test", "interval", "timeout", "retries"],
                    "additionalProperties": False,
                    "properties": {
                        "test": {
                            "type": "array",
                            "items": {"type": "string"},
                            "minItems": 2,
                            "prefixItems": [{"enum": ["CMD", "CMD-SHELL"]}],
                        },
                        "interval": {"$ref": "#/$defs/duration"},
                        "timeout": {"$ref": "#/$defs/duration"},
                        "start_period": {"$ref": "#/$defs/duration"},
                        "retries": {"type": "integer", "minimum": 1},
                    },
                },
                "stop_grace_period": {"$ref": "#/$defs/duration"},
                "restart": {"enum": ["no", "always", "on-failure", "unless-stopped"]},
            },
        },
    },
}

# What the interpolated variables stand for in these checks.
SAMPLE_ENV = {
    "CALLPILOT_TURN_SECRET": "0123456789abcdef",
    "CALLPILOT_PUBLIC_HOST": "calls.example.com",
    "CALLPILOT_PUBLIC_IP": "203.0.113.7",
    "CALLPILOT_ALLOWED_ORIGINS": "https://agents.example.com",
    "POSTGRES_PASSWORD": "s3cret",
}
_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::([-?])([^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} substitution."""

    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if env.get(name):
            return env[name]
        if op == "?":
            raise KeyError(f"{name}: {arg}")
        return arg or ""

    return _VAR.sub(sub, value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict)
    return doc


def env_of(service: dict[str, Any], env: dict[str, str] = SAMPLE_ENV) -> dict[str, str]:
    return {k: interpolate(v, env) for k, v in service.get("environment", {}).items()}


def command_of(service: dict[str, Any]) -> list[str]:
    return [interpolate(part, SAMPLE_ENV) for part in service["command"]]


def test_compose_file_matches_the_schema(compose: dict[str, Any]) -> None:
    jsonschema.validate(compose, SCHEMA, cls=jsonschema.Draft202012Validator)
    assert set(compose["services"]) == {
        "server-a",
        "server-b",
        "keys",
        "gateway",
        "postgres",
        "redis",
        "coturn",
    }
    for name, service in compose["services"].items():
        for dependency in service.get("depends_on", {}):
            assert dependency in compose["services"], (name, dependency)
            assert "healthcheck" in compose["services"][dependency]
    for name in (*SERVERS, "gateway", "keys"):
        assert compose["services"][name]["image"] == "callpilot:local"
    assert (ROOT / compose["services"]["server-a"]["build"]["dockerfile"]).is_file()


def test_required_secrets_fail_loudly_when_missing(compose: dict[str, Any]) -> None:
    with pytest.raises(KeyError, match="CALLPILOT_TURN_SECRET"):
        env_of(compose["services"]["gateway"], {})


@pytest.mark.parametrize("name", SERVERS)
def test_server_command_and_environment_are_what_the_server_accepts(
    compose: dict[str, Any], name: str
) -> None:
    service = compose["services"][name]
    command = command_of(service)
    assert command[0] == "callpilot"
    args = build_parser().parse_args(command[1:])
    assert args.command == "serve"
    env = env_of(service)
    known = {var for name in Settings.model_fields for var in env_names(Settings, name)}
    assert set(env) <= known, set(env) - known
    settings = Settings.from_env(env, host=args.host, port=args.port)  # validates every value
    assert settings.database_url.startswith("postgresql+asyncpg://")
    # The database URL names the postgres service and its user, password and database.
    pg = env_of(compose["services"]["postgres"])
    assert settings.database_url == (
        f"postgresql+asyncpg://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@postgres:5432/{pg['POSTGRES_DB']}"
    )
    assert settings.host == "0.0.0.0"
    # Many instances: Redis really used, and authentication on (the port is not loopback).
    assert settings.redis_url == "redis://redis:6379/0" and "redis" in service["depends_on"]
    assert settings.auth_enabled
    assert service["ports"][0].endswith(f":{settings.port}")
    assert "server" in service["networks"]["default"]["aliases"]
    health = " ".join(service["healthcheck"]["test"])
    assert f"127.0.0.1:{settings.port}" in health


def test_gateway_command_and_environment_are_what_the_gateway_accepts(compose: dict[str, Any]) -> None:
    service = compose["services"]["gateway"]
    args = build_parser().parse_args(command_of(service)[1:])
    assert args.command == "gateway"
    known = {gateway_env_name(name) for name in GatewaySettings.model_fields}
    env = env_of(service)
    assert set(env) <= known, set(env) - known
    settings = GatewaySettings.from_env(env, host=args.host, port=args.port, server=args.server)
    assert not settings.ice_loopback, "loopback ICE is for development and tests only"
    # It reaches the server service on the port the server listens on.
    # The `server` alias that every replica carries, resolved by gRPC's DNS resolver.
    server_args = build_parser().parse_args(command_of(compose["services"]["server-a"])[1:])
    assert settings.server == f"dns:///server:{server_args.port}"
    assert set(SERVERS) <= set(service["depends_on"])
    assert f"{settings.port}:{settings.port}" in service["ports"]
    assert f"127.0.0.1:{settings.port}/healthz" in " ".join(service["healthcheck"]["test"])
    # TURN: credentials from the same secret coturn verifies, on the port coturn listens on.
    assert settings.turn_urls and all(u.startswith("turn:calls.example.com:3478") for u in settings.turn_urls)
    assert settings.turn_ttl_s == 3600 and settings.allowed_origins == ("https://agents.example.com",)
    coturn = command_of(compose["services"]["coturn"])
    assert f"--static-auth-secret={settings.turn_secret}" in coturn


def test_keys_is_a_one_shot_that_creates_an_integrator_key(compose: dict[str, Any]) -> None:
    service = compose["services"]["keys"]
    args = build_parser().parse_args(command_of(service)[1:])
    assert (args.command, args.keys_command, args.role) == ("keys", "create", "integrator")
    assert service["restart"] == "no"
    assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    # The same database as the servers, so they accept the key it prints.
    assert (
        env_of(service)["CALLPILOT_DATABASE_URL"]
        == env_of(compose["services"]["server-a"])["CALLPILOT_DATABASE_URL"]
    )


def test_coturn_uses_rest_credentials_and_denies_private_peers(compose: dict[str, Any]) -> None:
    service = compose["services"]["coturn"]
    command = command_of(service)
    config_path = command[command.index("-c") + 1]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in service["volumes"]}
    config = (ROOT / mounts[config_path]).read_text()
    lines = {ln.strip() for ln in config.splitlines() if ln.strip() and not ln.startswith("#")}
    assert "use-auth-secret" in lines and "no-multicast-peers" in lines
    denied = {ln.split("=", 1)[1] for ln in lines if ln.startswith("denied-peer-ip=")}
    for private in (
        "10.0.0.0-10.255.255.255",
        "172.16.0.0-172.31.255.255",
        "192.168.0.0-192.168.255.255",
        "127.0.0.0-127.255.255.255",
        "169.254.0.0-169.254.255.255",
        "100.64.0.0-100.127.255.255",
        "::1",
    ):
        assert private in denied, private
    assert any(d.startswith("fc00::") for d in denied) and any(d.startswith("fe80::") for d in denied)
    port = next(ln.split("=")[1] for ln in lines if ln.startswith("listening-port="))
    low, high = (
        next(ln.split("=")[1] for ln in lines if ln.startswith(k)) for k in ("min-port=", "max-port=")
    )
    assert f"{port}:{port}/udp" in service["ports"] and f"{low}-{high}:{low}-{high}/udp" in service["ports"]
    assert any(c.startswith("--external-ip=203.0.113.7") for c in command)


def test_the_image_installs_the_three_distributions() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    for path in ("clients/python", "server", "gateway"):
        assert f"./{path}" in dockerfile
        assert (ROOT / path / "pyproject.toml").is_file()
    assert "-c constraints.txt" in dockerfile
