"""Our own overhead around the production providers (prints figures; not a test).

The providers run as the loopback fakes of the test suite, which answer at
once, so every figure below is time spent in our code, the SDKs and the
loopback network, not in Deepgram or a model. Stages (p50/p95/p99 in ms):

  deepgram push -> upstream     push_audio() returned -> bytes read by the server
  deepgram final -> event       speech_final Results written -> FINAL yielded by the stream
  deepgram drop -> replay       last audio on the dropped socket -> first replayed audio on the new one
  openai-stt end -> upload      END_OF_SPEECH emitted -> the WAV upload read by the server
  openai-stt end -> final       END_OF_SPEECH emitted -> FINAL yielded (one full upload round trip)
  llm prompt build              building the bounded prompt from a 20-turn state
  llm respond -> request        respond() called -> chat request read by the server
  llm chunk -> delta            first content chunk written -> SuggestionDelta yielded
  llm tool round                [DONE] of the tool-call round -> follow-up request read by the server
                                (assembling the calls, running them on an in-memory directory)
  llm [DONE] -> completed       [DONE] written -> SuggestionCompleted yielded

    .venv/bin/python tests/benchmarks/providers_overhead.py [--utterances 6] [--turns 30] [--speed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
import warnings
import wave
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore", category=DeprecationWarning)

from benchmarks.figures import SUPPORT_CALL_LINES  # noqa: E402
from benchmarks.figures import row as _row  # noqa: E402
from callpilot.server.assist.base import AssistRequest, ConversationState, Turn  # noqa: E402
from callpilot.server.assist.llm_prompt import build_messages  # noqa: E402
from callpilot.server.assist.openai_llm import OpenAIAssistant  # noqa: E402
from callpilot.server.assist.tools import ToolBox  # noqa: E402
from callpilot.server.stt.base import SpeechEventKind  # noqa: E402
from callpilot.server.stt.deepgram import DeepgramEngine  # noqa: E402
from callpilot.server.stt.openai_stt import OpenAITranscriptionEngine  # noqa: E402
from callpilot.v1 import common_pb2, events_pb2  # noqa: E402
from fakes.directory import FakeDirectory  # noqa: E402
from providers.fake_deepgram import DeepgramScript, FakeDeepgram, silence, tone_words  # noqa: E402
from providers.fake_openai import FakeOpenAI, Stream, ToolCallSpec, Transcript, text_stream  # noqa: E402
from support import synth  # noqa: E402


def row(name: str, values_s: list[float]) -> str:
    return _row(name, values_s, width=28, decimals=2)


VOCAB = ["my", "order", "number", "is", "seven", "eight", "nine", "refund", "please", "hello"]
K = SpeechEventKind


async def paced_push(
    stream: Any, audio: np.ndarray[Any, Any], speed: float, pushes: list[tuple[int, float]]
) -> None:
    """20 ms chunks at `speed` x real time; records (total bytes pushed, time)."""
    start = time.monotonic()
    n = 320
    total = 0
    for i in range(0, len(audio), n):
        due = start + (i / 16_000) / speed
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        chunk = audio[i : i + n]
        await stream.push_audio(chunk)
        total += len(chunk) * 2
        pushes.append((total, time.time()))


async def bench_deepgram(utterances: int, speed: float) -> dict[str, list[float]]:
    words = ["my", "order", "number", "is", "seven", "eight", "nine"]
    one = np.concatenate([tone_words(words, VOCAB), silence(0.8)])
    audio = np.concatenate([silence(0.2)] + [one] * utterances)
    out: dict[str, list[float]] = {"deepgram push -> upstream": [], "deepgram final -> event": []}
    async with FakeDeepgram(DeepgramScript(VOCAB, final_every_words=3)) as dg:
        engine = DeepgramEngine("test-key", base_url=dg.url)
        stream = engine.stream(language="en")
        finals: list[float] = []

        async def consume() -> None:
            async for ev in stream:
                if ev.kind is K.FINAL and ev.text:
                    finals.append(time.time())

        task = asyncio.create_task(consume())
        pushes: list[tuple[int, float]] = []
        await paced_push(stream, audio, speed, pushes)
        stream.end_input()
        await asyncio.wait_for(task, 30)
        conn = dg.connections[0]
        j = 0
        for total, pushed in pushes:
            while j < len(conn.audio_at) and conn.audio_at[j][0] < total:
                j += 1
            if j < len(conn.audio_at):
                out["deepgram push -> upstream"].append(conn.audio_at[j][1] - pushed)
        sent_finals = [
            t
            for m, t in zip(conn.sent, conn.sent_at, strict=True)
            if m["type"] == "Results" and m.get("speech_final") and m["channel"]["alternatives"][0]["words"]
        ]
        # Parts finalised earlier make the speech_final's own words fewer, never zero here.
        out["deepgram final -> event"] = [f - s for s, f in zip(sent_finals, finals, strict=False)]
        await engine.aclose()

    drops: list[float] = []
    for _ in range(5):
        script = DeepgramScript(VOCAB, final_every_words=3, drop_after={0: 1.5})
        async with FakeDeepgram(script) as dg:
            engine = DeepgramEngine("test-key", base_url=dg.url)
            stream = engine.stream(language="en")
            task = asyncio.create_task(_drain(stream))
            await paced_push(stream, np.concatenate([silence(0.2), one, one]), max(speed, 2.0), [])
            stream.end_input()
            await asyncio.wait_for(task, 30)
            if len(dg.connections) > 1 and dg.connections[1].audio_at:
                drops.append(dg.connections[1].audio_at[0][1] - dg.connections[0].audio_at[-1][1])
    out["deepgram drop -> replay"] = drops
    return out


async def _drain(stream: Any) -> None:
    async for _ in stream:
        pass


def read_wav(path: Path) -> np.ndarray[Any, Any]:
    with wave.open(str(path), "rb") as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


async def bench_openai_stt(speed: float) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        parts = [read_wav(synth(p, Path(tmp) / f"p{i}.wav")) for i, p in enumerate(SUPPORT_CALL_LINES)]
    gap = np.zeros(16_000, dtype=np.float32)
    audio = np.concatenate([x for p in parts * 2 for x in (gap, p)] + [gap]).astype(np.float32)
    out: dict[str, list[float]] = {"openai-stt end -> upload": [], "openai-stt end -> final": []}
    async with FakeOpenAI(transcriptions=lambda rec: Transcript("text")) as oa:
        engine = OpenAITranscriptionEngine("sk-test", base_url=oa.base_url, max_retries=0)
        stream = engine.stream(language="en")
        ends: dict[int, float] = {}

        async def consume() -> None:
            async for ev in stream:
                if ev.kind is K.END_OF_SPEECH:
                    ends[ev.utterance] = ev.created
                elif ev.kind is K.FINAL:
                    out["openai-stt end -> final"].append(time.time() - ends[ev.utterance])

        task = asyncio.create_task(consume())
        await paced_push(stream, audio, speed, [])
        stream.end_input()
        await asyncio.wait_for(task, 60)
        for end, arrived in zip(sorted(ends.values()), oa.log.transcription_arrived, strict=False):
            out["openai-stt end -> upload"].append(arrived - end)
        await engine.aclose()
    return out


def bench_state() -> ConversationState:
    roles = [common_pb2.SPEAKER_ROLE_CUSTOMER, common_pb2.SPEAKER_ROLE_AGENT]
    turns = [
        Turn(
            f"seg-{i:04d}",
            roles[i % 2],
            f"Turn {i}: the headphones from order 78901 crackle on the left side.",
        )
        for i in range(20)
    ]
    return ConversationState(
        call_id="bench",
        topics=[events_pb2.TOPIC_REFUND],
        turns=turns,
        suggestions=["Apologise and ask for the order number."],
    )


async def bench_llm(turns: int) -> dict[str, list[float]]:
    state = bench_state()
    request = AssistRequest(suggestion_id="sug", state=state, trigger=state.turns[-2])
    t0 = time.perf_counter()
    for _ in range(200):
        build_messages(request)
    out: dict[str, list[float]] = {"llm prompt build": [(time.perf_counter() - t0) / 200]}
    for key in ("llm respond -> request", "llm chunk -> delta", "llm tool round", "llm [DONE] -> completed"):
        out[key] = []

    def script(body: dict[str, Any]) -> Any:
        if not any(m["role"] == "tool" for m in body["messages"]):
            return Stream(
                tool_calls=[ToolCallSpec("get_order_details", '{"order_number": "78901"}', pieces=4)]
            )
        return text_stream("Order 78901 was delivered on 5 March; offer a replacement or a refund.", pieces=8)

    async with FakeOpenAI(chat=script) as oa:
        assistant = OpenAIAssistant("sk-test", oa.base_url, "gpt-test", ToolBox(FakeDirectory()))
        for _ in range(turns):
            n = len(oa.log.chat_arrived)
            started = time.time()
            first_delta = completed = 0.0
            async for item in assistant.respond(request):
                if isinstance(item, events_pb2.SuggestionDelta) and not first_delta:
                    first_delta = time.time()
                elif isinstance(item, events_pb2.SuggestionCompleted):
                    completed = time.time()
            arrived, first, done = oa.log.chat_arrived[n:], oa.log.first_payload_at[n:], oa.log.done_at[n:]
            out["llm respond -> request"].append(arrived[0] - started)
            out["llm tool round"].append(arrived[1] - done[0])
            out["llm chunk -> delta"].append(first_delta - first[1])
            out["llm [DONE] -> completed"].append(completed - done[1])
        await assistant.aclose()
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--utterances", type=int, default=6, help="Deepgram utterances (about 2 s each)")
    parser.add_argument("--turns", type=int, default=30, help="assistant turns")
    parser.add_argument("--speed", type=float, default=1.0, help="audio pacing, x real time")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    results: dict[str, list[float]] = {}
    results |= await bench_deepgram(args.utterances, args.speed)
    results |= await bench_openai_stt(args.speed)
    results |= await bench_llm(args.turns)
    print("| stage                        |     n |  p50 ms  |  p95 ms  |  p99 ms  |")
    print("|------------------------------|-------|----------|----------|----------|")
    for name, values in results.items():
        print(row(name, values))


if __name__ == "__main__":
    asyncio.run(main())
