"""The TypeScript code type-checks under `tsc --strict`, and the app's unit tests pass."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from web.procs import APP_DIR, SDK_DIR, node_tool

TSC = node_tool("typescript", "bin", "tsc")


def _strict(tsconfig: Path) -> bool:
    text = re.sub(r"//.*", "", tsconfig.read_text())
    return bool(json.loads(text)["compilerOptions"].get("strict"))


@pytest.mark.parametrize(
    "project",
    [
        SDK_DIR / "tsconfig.json",
        SDK_DIR / "test" / "tsconfig.json",
        APP_DIR / "tsconfig.json",
        APP_DIR / "tsconfig.node.json",
    ],
    ids=["sdk", "sdk-tests", "agent-ui", "agent-ui-vite-config"],
)
def test_tsc_strict(project: Path) -> None:
    base = project if "extends" not in project.read_text() else SDK_DIR / "tsconfig.json"
    assert _strict(base), f"{base} must set strict"
    result = subprocess.run(
        [*TSC, "-p", str(project), "--noEmit"],
        cwd=project.parent,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_agent_ui_unit_tests(js_build: object) -> None:
    """vitest: how events fold into the view (the SDK must be built first: js_build)."""
    # CI=true makes vitest colour its output; ask for plain text and strip
    # any escape codes that remain before reading the summary.
    result = subprocess.run(
        [*node_tool("vitest", "vitest.mjs"), "run", "--reporter=dot"],
        cwd=APP_DIR,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"},
    )
    plain = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)
    assert result.returncode == 0, plain[-4000:] + result.stderr[-2000:]
    assert re.search(r"Tests\s+\d+ passed", plain), plain[-2000:]
