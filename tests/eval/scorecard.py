"""Prints the evaluation scorecard (tests/eval/calls.json) for the local engine
and for the LLM engine against the loopback OpenAI-protocol server.

    .venv/bin/python tests/eval/scorecard.py [--engine local|llm|both] [--speech] [--json]

--speech: the customer turns of calls marked "speech" are synthesised with
flite and transcribed with the embedded Whisper model first (slow: minutes
on a small CPU), so their STT errors are real ones.

Figures: identification (customer identified, or the expected candidate
offered and nobody taken), order resolution (the order resolved, or the
expected near miss offered), tools (expected tools ran; failed lookups not
repeated), facts (must / must-not appear), grounded precision (figures in
what the agent was shown that a cited tool result or the call supports; for
the LLM also of the streamed draft, before the check), contradictions,
and p95 of final turn -> first suggestion delta (in-process, tools on SQLite).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import warnings
import wave
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore", category=DeprecationWarning)

import numpy as np  # noqa: E402
from eval.harness import load_calls, run_llm, run_local, scorecard  # noqa: E402


def _format(name: str, card: dict[str, Any]) -> str:
    def rate(key: str) -> str:
        ok, n = card[key]
        return f"{ok}/{n}"

    lines = [
        f"== {name} engine: {card['calls']} calls, {card['calls_passed']} passed every check",
        f"  identification        {rate('identification')}",
        f"  order resolution      {rate('order_resolution')}",
        f"  tools                 {rate('tools')}",
        f"  facts in / out        {rate('facts')}",
        f"  topics, sentiment     {rate('topics_sentiment')}",
        f"  grounded precision    {card['grounded_precision']:.3f} of {card['facts_stated']} figures shown"
        + (f" (draft before the check: {card['draft_grounded_precision']:.3f})" if name == "llm" else ""),
        f"  contradictions        {card['contradictions']}",
        f"  p95 final -> delta    {card['p95_final_to_first_delta_ms']:.1f} ms",
    ]
    for call_id, failures in card["failures"].items():
        lines.append(f"  FAILED {call_id}: {'; '.join(failures)}")
    return "\n".join(lines)


async def _transcribe(calls: list[dict[str, Any]]) -> dict[str, list[str]]:
    from callpilot.server.stt.model import resolve_model
    from callpilot.server.stt.whisper import WhisperEngine
    from support import synth

    engine = WhisperEngine(resolve_model(None, Path.home() / ".cache" / "callpilot" / "models"), beam_size=5)
    heard: dict[str, list[str]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for call in calls:
                if not call.get("speech"):
                    continue
                texts = []
                for i, turn in enumerate(call["turns"]):
                    if turn["role"] != "customer":
                        texts.append(turn["text"])
                        continue
                    path = synth(turn["text"], Path(tmp) / f"{call['id']}-{i}.wav")
                    with wave.open(str(path)) as w:
                        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
                    hyp = await engine.transcribe(pcm.astype(np.float32) / 32768.0)
                    texts.append(hyp.text if hyp is not None else "")
                heard[call["id"]] = texts
                print(f"  [speech] {call['id']}: {texts}", file=sys.stderr)
    finally:
        await engine.aclose()
    return heard


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engine", choices=["local", "llm", "both"], default="both")
    parser.add_argument("--speech", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the scorecards as JSON")
    args = parser.parse_args()
    calls = load_calls()
    texts = await _transcribe(calls) if args.speech else None
    local = await run_local(calls, texts)
    cards = {"local": scorecard(local)}
    if args.engine in ("llm", "both"):
        if texts:
            calls = [
                dict(c, turns=[dict(t, text=x) for t, x in zip(c["turns"], texts[c["id"]], strict=True)])
                if c["id"] in texts
                else c
                for c in calls
            ]
        cards["llm"] = scorecard(await run_llm(calls, local))
    if args.engine == "llm":
        cards.pop("local")
    if args.json:
        print(json.dumps(cards, indent=1))
    else:
        for name, card in cards.items():
            print(_format(name, card))


if __name__ == "__main__":
    asyncio.run(main())
