"""deploy/Dockerfile, checked statically: Docker cannot run on these machines.

What a build would prove is checked here from the file and the repository:
the three stages, that the app stage installs with the lock file and builds
the agent app (and the runtime serves that build), that a non-root user
owns the data and cache directories before the Whisper weights are assembled
*as that user* into the cache the server reads, that a health check exists,
that every COPY source exists in the repository (and is not excluded from the
build context), and that the default command is one the real CLI accepts. An
image build itself is not run (docs/deployment.md says so).
"""

from __future__ import annotations

import fnmatch
import json
import shlex
from dataclasses import dataclass

import pytest
from callpilot.cli.main import build_parser
from callpilot.gateway.config import GatewaySettings
from callpilot.gateway.config import env_name as gateway_env_name
from callpilot.server.config import Settings, env_names
from support import ROOT

DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / "deploy" / "Dockerfile.dockerignore"


@dataclass(frozen=True)
class Instruction:
    stage: str
    keyword: str
    args: str


def parse(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped, each tagged with its stage."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    assert not current, "a continuation line at the end of the file"
    out: list[Instruction] = []
    stage = ""
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = args.split()
            assert len(parts) == 3 and parts[1].upper() == "AS", f"every stage is named: {line}"
            stage = parts[2]
        out.append(Instruction(stage, keyword, args.strip()))
    return out


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse(DOCKERFILE.read_text())


def _exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def _env(instructions: list[Instruction], stage: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in instructions:
        if ins.stage == stage and ins.keyword == "ENV":
            for token in shlex.split(ins.args):
                name, _, value = token.partition("=")
                env[name] = value
    return env


def test_three_named_stages_in_order(instructions: list[Instruction]) -> None:
    stages = [ins.args.split()[2] for ins in instructions if ins.keyword == "FROM"]
    assert stages == ["app", "python", "runtime"]
    assert instructions[-1].stage == "runtime"


def test_the_app_stage_builds_the_agent_app_from_the_lock_file(instructions: list[Instruction]) -> None:
    app = [ins for ins in instructions if ins.stage == "app"]
    copies = " ".join(ins.args for ins in app if ins.keyword == "COPY")
    assert "package-lock.json" in copies
    runs = " ".join(ins.args for ins in app if ins.keyword == "RUN")
    assert "npm ci" in runs and "npm run build" in runs
    # `npm run build` at the root builds the SDK, then the agent app (its workspaces).
    package = json.loads((ROOT / "package.json").read_text())
    assert set(package["workspaces"]) == {"clients/typescript", "clients/agent-ui"}
    assert "@callpilot/agent-ui" in package["scripts"]["build"]
    for workspace in package["workspaces"]:
        assert workspace in copies, f"the app stage needs {workspace}"
    # The runtime serves exactly that build: the gateway's static dir is where it is copied.
    runtime = [ins for ins in instructions if ins.stage == "runtime"]
    copied = [ins.args.split() for ins in runtime if ins.keyword == "COPY" and "--from=app" in ins.args]
    assert copied == [
        ["--from=app", "/src/clients/agent-ui/dist", _env(instructions, "runtime")["CALLPILOT_STATIC_DIR"]]
    ]


def test_a_non_root_user_owns_its_dirs_before_the_weights_are_assembled(
    instructions: list[Instruction],
) -> None:
    runtime = [ins for ins in instructions if ins.stage == "runtime"]
    env = _env(instructions, "runtime")
    data, cache = env["CALLPILOT_DATA_DIR"], env["CALLPILOT_CACHE_DIR"]
    users = [i for i, ins in enumerate(runtime) if ins.keyword == "USER"]
    assert len(users) == 1, "one USER switch, after the root-only steps"
    user = runtime[users[0]].args
    assert user not in ("root", "0") and not user.startswith("0:")
    before = " ".join(ins.args for ins in runtime[: users[0]] if ins.keyword == "RUN")
    assert "useradd" in before and user in before
    # `install -d -o USER -g USER` creates both directories owned by the user.
    assert f"install -d -o {user} -g {user}" in before
    assert data in before and cache in before
    after = runtime[users[0] + 1 :]
    weights = [ins for ins in after if ins.keyword == "RUN" and "resolve_model" in ins.args]
    assert len(weights) == 1, "the Whisper weights are assembled once, as the user, after USER"
    assert f"{cache}/models" in weights[0].args
    assert not any(ins.keyword == "USER" for ins in after)
    # The server reads its settings from exactly these variables.
    server_vars = {var for name in Settings.model_fields for var in env_names(Settings, name)}
    gateway_vars = {gateway_env_name(name) for name in GatewaySettings.model_fields}
    callpilot_vars = {name for name in env if name.startswith("CALLPILOT_")}
    assert callpilot_vars <= server_vars | gateway_vars, callpilot_vars - server_vars - gateway_vars
    # and the function the RUN calls exists with that signature.
    from callpilot.server.stt.model import resolve_model

    assert list(resolve_model.__annotations__)[:2] == ["spec", "cache_dir"]


def test_healthcheck_and_default_command(instructions: list[Instruction]) -> None:
    runtime = [ins for ins in instructions if ins.stage == "runtime"]
    [health] = [ins for ins in runtime if ins.keyword == "HEALTHCHECK"]
    options, _, command = health.args.partition(" CMD ")
    assert "--interval=" in options and "--start-period=" in options
    check = _exec_form(command)
    assert check[0] == "python" and "grpc_health" in check[-1]
    [cmd] = [ins for ins in runtime if ins.keyword == "CMD"]
    argv = _exec_form(cmd.args)
    assert argv[0] == "callpilot"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "serve" and args.host == "0.0.0.0"
    exposed = {int(p) for ins in runtime if ins.keyword == "EXPOSE" for p in ins.args.split()}
    assert {Settings().port, GatewaySettings().port} <= exposed
    # The health check probes the port the default command serves on.
    assert f"127.0.0.1:{args.port or Settings().port}" in check[-1]


def _ignored(path: str, patterns: list[str]) -> bool:
    return any(
        fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, p.removeprefix("**/")) or path.startswith(p + "/")
        for p in patterns
    )


def test_every_copy_source_is_in_the_repository_and_in_the_context(instructions: list[Instruction]) -> None:
    patterns = [
        ln.strip() for ln in DOCKERIGNORE.read_text().splitlines() if ln.strip() and not ln.startswith("#")
    ]
    for needed in (".venv", "**/node_modules", "**/dist", ".git"):
        assert needed in patterns, f"{needed} must stay out of the build context"
    sources = []
    for ins in instructions:
        if ins.keyword != "COPY" or "--from=" in ins.args:
            continue
        *srcs, _dest = ins.args.split()
        sources.extend(srcs)
    assert sources
    for src in sources:
        assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
        assert not _ignored(src, patterns), f"COPY {src}: excluded by {DOCKERIGNORE.name}"
