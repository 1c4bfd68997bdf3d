"""The TypeScript SDK's own tests (node --test) against the real server and gateway."""

from __future__ import annotations

import re
from pathlib import Path

from web.procs import SDK_DIR, FinishedCall, GatewayProcess, node_tool, run_checked, run_node


def test_sdk_against_a_real_server(
    gateway: GatewayProcess, finished_call: FinishedCall, artifacts: Path
) -> None:
    run_checked(
        [*node_tool("typescript", "bin", "tsc"), "-p", "test/tsconfig.json"],
        SDK_DIR,
        "building the SDK tests",
    )
    result = run_node(
        ["--test", "--test-reporter=spec", "dist-test/test/"],
        cwd=SDK_DIR,
        env={"CALLPILOT_GATEWAY": gateway.url, "CALLPILOT_FINISHED": str(finished_call.json_path)},
        timeout=120,
        log_path=artifacts / "sdk-node-tests.log",
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    passed = re.search(r"^\S+ pass (\d+)$", result.stdout, re.M)
    failed = re.search(r"^\S+ fail (\d+)$", result.stdout, re.M)
    assert passed and failed and int(passed.group(1)) >= 9 and failed.group(1) == "0", result.stdout[-2000:]
