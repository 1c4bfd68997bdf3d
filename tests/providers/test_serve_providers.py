"""Choosing cloud providers is configuration only: `callpilot serve` with
environment variables, against loopback servers speaking Deepgram's and
OpenAI's wire protocols; a bad configuration fails at start-up."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from callpilot.client import AsyncCallpilot
from callpilot.client.audio import RawAudio
from callpilot.v1 import call_pb2, common_pb2, events_pb2
from providers.fake_deepgram import DeepgramScript, FakeDeepgram, silence, tone_words
from providers.fake_openai import ChatReply, Completion, FakeOpenAI, Stream, ToolCallSpec, text_stream
from support import ServerProcess, concat_wavs, synth

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:websockets.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:deepgram.*"),
]

VOCAB = ["i", "want", "a", "refund", "for", "order", "nine", "eight", "four", "seven", "six"]
CALLPILOT = str(Path(sys.executable).parent / "callpilot")


def llm(body: dict[str, Any]) -> ChatReply:
    if not body.get("stream"):
        return Completion(
            "Reason for contact: refund\nActions: order looked up\nResolution: refund\nFollow-ups: none"
        )
    if not any(m["role"] == "tool" for m in body["messages"]):
        return Stream(tool_calls=[ToolCallSpec("get_order_details", '{"order_number": "98476"}', pieces=3)])
    return text_stream("Order 98476 can be refunded under the 30-day return policy.")


def pcm16(audio: np.ndarray[Any, Any]) -> bytes:
    return bytes((np.clip(audio, -1, 1) * 32767).round().astype("<i2").tobytes())


def linear16(data: bytes) -> RawAudio:
    config = call_pb2.AudioConfig(
        encoding=common_pb2.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=16_000, channel_count=1
    )
    return RawAudio(data, config, realtime=True)


def serve_env(tmp_path: Path, dg: FakeDeepgram, oa: FakeOpenAI) -> dict[str, str]:
    return {
        "CALLPILOT_DATA_DIR": str(tmp_path),
        "CALLPILOT_STT": "deepgram",
        "DEEPGRAM_API_KEY": "test-key",
        "DEEPGRAM_BASE_URL": dg.url,
        "CALLPILOT_ASSISTANT": "openai",
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": oa.base_url,
        "CALLPILOT_OPENAI_MODEL": "gpt-test",
    }


async def collect(address: str, source: RawAudio) -> list[events_pb2.CallEvent]:
    async with AsyncCallpilot(address) as cp, asyncio.timeout(90):
        return [e async for e in cp.stream_call(source, call_pb2.CallConfig(language_code="en-US"))]


async def test_cloud_providers_by_configuration(tmp_path: Path, artifacts: Path) -> None:
    audio = np.concatenate([silence(0.5), tone_words(VOCAB, VOCAB), silence(1.5)])
    async with FakeDeepgram(DeepgramScript(vocabulary=VOCAB)) as dg, FakeOpenAI(chat=llm) as oa:
        proc = ServerProcess(serve_env(tmp_path, dg, oa), artifacts / "server-providers.log")
        await asyncio.to_thread(proc.start)
        try:
            events = await collect(proc.address, linear16(pcm16(audio)))
        finally:
            await asyncio.to_thread(proc.stop)
        assert dg.connections and dg.connections[0].query["model"] == ["nova-3"]
        assert any(body.get("model") == "gpt-test" for body in oa.log.chat)
    finals = [e.transcript.text for e in events if e.HasField("transcript") and e.transcript.is_final]
    assert finals and "refund" in finals[0].lower()
    tools = [e.tool_call for e in events if e.HasField("tool_call")]
    assert [t.tool_name for t in tools] == ["get_order_details"]
    assert tools[0].status == events_pb2.TOOL_CALL_STATUS_SUCCEEDED
    completed = [e.suggestion_completed for e in events if e.HasField("suggestion_completed")]
    assert completed and completed[-1].text.startswith("Order 98476")
    assert (events_pb2.SOURCE_KIND_ORDER, "98476") in {(s.kind, s.id) for s in completed[-1].sources}
    assert events[-1].call_ended.summary.startswith("Reason for contact: refund")


async def test_deepgram_outage_falls_back_to_embedded_stt(tmp_path: Path, artifacts: Path) -> None:
    """Deepgram drops after a second and refuses to come back: the embedded
    engine takes over the speaker, including the audio Deepgram never finalised."""
    d = tmp_path / "speech"
    d.mkdir()
    lines = [
        "I would like a refund for my headphones please.",
        "The order number is seven eight nine oh one.",
    ]
    wav = concat_wavs(
        [synth(line, d / f"{i}.wav") for i, line in enumerate(lines)], d / "call.wav", gap_s=1.0
    )
    with wave.open(str(wav), "rb") as w:
        pcm = w.readframes(w.getnframes())
    script = DeepgramScript(vocabulary=VOCAB, drop_after={0: 1.0}, refuse_from=1)
    async with FakeDeepgram(script) as dg, FakeOpenAI(chat=llm) as oa:
        env = serve_env(tmp_path, dg, oa) | {"CALLPILOT_ASSISTANT": "local"}
        proc = ServerProcess(env, artifacts / "server-stt-fallback.log")
        await asyncio.to_thread(proc.start)
        try:
            events = await collect(proc.address, linear16(pcm))
        finally:
            await asyncio.to_thread(proc.stop)
    notices = [e.notice for e in events if e.HasField("notice")]
    assert any(n.code == "STT_DEGRADED" for n in notices), notices
    finals = [e.transcript for e in events if e.HasField("transcript") and e.transcript.is_final]
    text = " ".join(t.text.lower() for t in finals)
    assert "refund" in text and "78901" in text.replace(" ", "").replace("-", "")
    assert len({t.segment_id for t in finals}) == len(finals)
    assert events[-1].HasField("call_ended")


def _serve_fails(env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "CALLPILOT_PORT": "0", **env}
    return subprocess.run([CALLPILOT, "serve"], env=full, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"CALLPILOT_STT": "deepgram"}, "DEEPGRAM_API_KEY"),
        ({"CALLPILOT_ASSISTANT": "openai"}, "OPENAI_API_KEY"),
        ({"CALLPILOT_STT": "openai"}, "OPENAI_API_KEY"),
        ({"CALLPILOT_STT": "watson"}, "CALLPILOT_STT must be one of"),
        ({"CALLPILOT_LLM_TIMEOUT_S": "soon"}, "CALLPILOT_LLM_TIMEOUT_S"),
    ],
)
def test_bad_configuration_fails_at_start(tmp_path: Path, env: dict[str, str], expected: str) -> None:
    clean = {"DEEPGRAM_API_KEY": "", "OPENAI_API_KEY": "", "CALLPILOT_DATA_DIR": str(tmp_path)}
    result = _serve_fails(clean | env)
    assert result.returncode == 2
    assert expected in result.stderr
    assert result.stderr.count("\n") <= 2, result.stderr


async def test_rejected_deepgram_key_fails_at_start(tmp_path: Path) -> None:
    async with FakeDeepgram(DeepgramScript(vocabulary=VOCAB, api_key="the-right-key")) as dg:
        env = {
            "CALLPILOT_STT": "deepgram",
            "DEEPGRAM_API_KEY": "a-wrong-key",
            "DEEPGRAM_BASE_URL": dg.url,
            "CALLPILOT_DATA_DIR": str(tmp_path),
        }
        result = await asyncio.to_thread(_serve_fails, env)
    assert result.returncode == 2, result.stderr
    assert "deepgram" in result.stderr.lower()


def ticket_llm(body: dict[str, Any]) -> ChatReply:
    if not body.get("stream"):
        return Completion("Reason for contact: faulty headphones")
    tool_messages = [m for m in body["messages"] if m["role"] == "tool"]
    if not tool_messages:
        args = '{"customer_id": "C-1001", "subject": "Headphones disconnect every few minutes"}'
        return Stream(tool_calls=[ToolCallSpec("create_ticket", args, pieces=3)])
    assert "awaiting_agent_confirmation" in tool_messages[-1]["content"]
    return text_stream("I have drafted a ticket about the disconnects; confirm it to file it.")


async def test_llm_write_tool_waits_for_confirmation(tmp_path: Path, artifacts: Path) -> None:
    async with FakeDeepgram(DeepgramScript(vocabulary=VOCAB)) as dg, FakeOpenAI(chat=ticket_llm) as oa:
        env = serve_env(tmp_path, dg, oa) | {"CALLPILOT_STT": "null"}
        proc = ServerProcess(env, artifacts / "server-llm-ticket.log")
        await asyncio.to_thread(proc.start)
        try:
            async with AsyncCallpilot(proc.address) as cp, asyncio.timeout(60):
                hint = call_pb2.CustomerHint(customer_id="C-1001")
                call = cp.stream_call(
                    None, call_pb2.CallConfig(customer_hint=hint), end_when_audio_ends=False
                )
                events: list[events_pb2.CallEvent] = []
                async with call:
                    await call.send_text(
                        common_pb2.SPEAKER_ROLE_CUSTOMER, "My headphones keep disconnecting."
                    )
                    async for event in call:
                        events.append(event)
                        if event.HasField("suggestion_completed"):
                            pending = next(e.tool_call for e in events if e.HasField("tool_call"))
                            assert pending.status == events_pb2.TOOL_CALL_STATUS_PENDING_CONFIRMATION
                            await call.decide_tool(
                                pending.tool_call_id, events_pb2.TOOL_DECISION_KIND_CONFIRM
                            )
                        if (
                            event.HasField("tool_call")
                            and event.tool_call.status == events_pb2.TOOL_CALL_STATUS_SUCCEEDED
                        ):
                            await call.end()
                subjects = [t.subject for t in (await cp.get_customer("C-1001")).tickets]
        finally:
            await asyncio.to_thread(proc.stop)
    assert "Headphones disconnect every few minutes" in subjects
    statuses = [e.tool_call.status for e in events if e.HasField("tool_call")]
    assert statuses == [
        events_pb2.TOOL_CALL_STATUS_PENDING_CONFIRMATION,
        events_pb2.TOOL_CALL_STATUS_SUCCEEDED,
    ]
