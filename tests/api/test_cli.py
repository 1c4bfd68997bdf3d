"""The `callpilot` command as a person uses it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support import ServerProcess, concat_wavs, silence_wav, stereo_wav, synth

CALLPILOT = str(Path(sys.executable).parent / "callpilot")


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CALLPILOT, *args], capture_output=True, text=True, timeout=timeout)


def test_call_prints_live_transcript_tools_and_suggestion(
    server: ServerProcess, support_call_wav: Path
) -> None:
    result = run_cli("call", str(support_call_wav), "--server", server.address)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "[customer] …" in out, "interim transcripts are printed"
    finals = [line for line in out.splitlines() if "[customer]" in line and "…" not in line]
    assert any("refund" in line.lower() for line in finals)
    tool_lines = [line for line in out.splitlines() if "get_order_details" in line]
    assert tool_lines and "129.99" in tool_lines[-1] and "Wireless Headphones" in tool_lines[-1]
    suggestion = [line for line in out.splitlines() if " suggestion " in line]
    assert suggestion and "order:78901" in suggestion[-1]
    assert "call ended" in out


def test_call_json_and_watch(server: ServerProcess, support_call_wav: Path) -> None:
    result = run_cli("call", str(support_call_wav), "--server", server.address, "--fast", "--json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    durable = [e["sequence"] for e in events if e.get("durable")]
    assert durable == [str(i) for i in range(1, len(durable) + 1)]  # int64 -> string in proto3 JSON
    assert "callStarted" in events[0] and "callEnded" in events[-1]
    call_id = events[0]["callId"]

    watched = run_cli("watch", call_id, "--server", server.address, "--json")
    assert watched.returncode == 0, watched.stderr
    replay = [json.loads(line) for line in watched.stdout.splitlines()]
    assert replay == [e for e in events if e.get("durable")]

    listed = run_cli("calls", "list", "--server", server.address)
    assert call_id in listed.stdout
    shown = run_cli("calls", "show", call_id, "--server", server.address)
    assert shown.returncode == 0 and "[customer]" in shown.stdout


def test_errors_are_one_clear_line(server: ServerProcess, tmp_path: Path) -> None:
    missing = run_cli("call", str(tmp_path / "nope.wav"), "--server", server.address)
    assert missing.returncode == 2 and missing.stderr.strip().count("\n") == 0
    assert "no such file" in missing.stderr

    not_wav = tmp_path / "x.wav"
    not_wav.write_text("hello")
    bad = run_cli("call", str(not_wav), "--server", server.address)
    assert bad.returncode == 2 and "not a PCM WAV file" in bad.stderr

    down = run_cli("calls", "list", "--server", "127.0.0.1:9")
    assert down.returncode == 3 and "cannot reach" in down.stderr and down.stderr.count("\n") == 1

    unknown = run_cli("watch", "no-such-call", "--server", server.address)
    assert unknown.returncode != 0 and "NOT_FOUND" in unknown.stderr

    usage = run_cli("call", "--stereo-roles", "x,y", "f.wav")
    assert usage.returncode == 2


def test_stereo_file_is_transcribed_per_role(server: ServerProcess, tmp_path: Path) -> None:
    """Agent on the left channel, customer on the right: each final carries its speaker."""
    agent = concat_wavs(
        [synth("Thank you for calling, how can I help you today?", tmp_path / "a.wav")],
        tmp_path / "agent.wav",
        gap_s=2.5,
    )
    customer = concat_wavs(
        [
            silence_wav(tmp_path / "s.wav", 3.0),
            synth("I would like a refund for my headphones.", tmp_path / "c.wav"),
        ],
        tmp_path / "customer.wav",
        gap_s=1.0,
    )
    stereo = stereo_wav(agent, customer, tmp_path / "stereo.wav")
    result = run_cli(
        "call",
        str(stereo),
        "--server",
        server.address,
        "--fast",
        "--json",
        "--stereo-roles",
        "agent,customer",
    )
    assert result.returncode == 0, result.stderr
    finals = [
        e["transcript"]
        for e in map(json.loads, result.stdout.splitlines())
        if "transcript" in e and e["transcript"].get("isFinal")
    ]
    by_role = {f["role"]: f["text"].lower() for f in finals}
    assert "help" in by_role["SPEAKER_ROLE_AGENT"]
    assert "refund" in by_role["SPEAKER_ROLE_CUSTOMER"]
