"""Processes for the web tests: the gateway, node scripts, a second web origin.

Every process is bounded in time and stopped by the fixture that started it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import threading
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import support
from callpilot.client import AsyncCallpilot
from callpilot.v1 import call_pb2, common_pb2, events_pb2
from support import ROOT
from support import free_port as free_port  # re-exported for the web tests

NODE = "node"
NODE_MODULES = ROOT / "node_modules"
JS_DIR = Path(__file__).resolve().parent / "js"
READY = "callpilot gateway: serving on"


class GatewayProcess(support.GatewayProcess):
    """The shared gateway process with the agent app's directory and CORS origins."""

    def __init__(
        self,
        server: str,
        log_path: Path,
        *,
        port: int | None = None,
        static_dir: Path | None = None,
        allowed_origins: tuple[str, ...] = (),
    ) -> None:
        env = {"CALLPILOT_ALLOWED_ORIGINS": ",".join(allowed_origins)}
        if static_dir is not None:
            env["CALLPILOT_STATIC_DIR"] = str(static_dir)
        super().__init__(server, log_path, env=env, port=port or 0)
        self.static_dir = static_dir
        self.allowed_origins = allowed_origins


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class StaticSite:
    """A directory served on its own loopback port: a web origin other than the gateway's."""

    def __init__(self, directory: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="static-site", daemon=True)
        self.thread.start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def other_origin(self) -> str:
        """The same site under another host name: a different origin, not on the allowed list."""
        return f"http://localhost:{self.port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


def run_node(
    args: list[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
    cwd: Path = ROOT,
    log_path: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run node with a hard time limit; the output also goes to `log_path`."""
    result = subprocess.run(
        [NODE, *args],
        env={**os.environ, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if log_path is not None:
        log_path.write_text(
            f"$ node {' '.join(args)}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
    return result


def last_json_line(stdout: str) -> Any:
    """The last line of a script's output that is a JSON object (its result)."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                return json.loads(line)
    raise AssertionError(f"no JSON result in the output:\n{stdout[-2000:]}")


# ----------------------------------------------------------- shared helpers

SDK_DIR = ROOT / "clients" / "typescript"
APP_DIR = ROOT / "clients" / "agent-ui"

# What the customer says in the text-turn calls (the same story as the API tests).
TEXT_TURNS = [
    (common_pb2.SPEAKER_ROLE_AGENT, "Thanks for calling, how can I help?"),
    (common_pb2.SPEAKER_ROLE_CUSTOMER, "Hi, my name is Maria Garcia. I am calling about my order 78901."),
    (common_pb2.SPEAKER_ROLE_CUSTOMER, "The headphones arrived broken and I would like a refund please."),
]


def node_tool(*parts: str) -> list[str]:
    return ["node", str(NODE_MODULES.joinpath(*parts))]


def run_checked(cmd: list[str], cwd: Path, what: str, timeout: float = 180) -> None:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{what} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


@dataclass(frozen=True)
class JsBuild:
    app_dir: Path  # the built agent app (what the gateway serves)
    thirdparty_dir: Path  # the browser page with the third-party clients


@dataclass(frozen=True)
class FinishedCall:
    call_id: str
    events: list[events_pb2.CallEvent]  # every event the stream delivered
    json_path: Path  # {callId, sequences, cases} of its durable events, for the node tests

    @property
    def durable(self) -> list[events_pb2.CallEvent]:
        return [e for e in self.events if e.durable]


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


async def text_call(address: str, *, end: bool = True) -> list[events_pb2.CallEvent]:
    """A call made of text turns, streamed until its first completed suggestion, then ended."""
    events: list[events_pb2.CallEvent] = []
    async with (
        AsyncCallpilot(address) as cp,
        cp.stream_call(None, call_pb2.CallConfig(), end_when_audio_ends=False, timeout=60) as call,
    ):
        for role, text in TEXT_TURNS:
            await call.send_text(role, text)
        async for event in call:
            events.append(event)
            if event.HasField("suggestion_completed") and end:
                await call.end()
    return events
