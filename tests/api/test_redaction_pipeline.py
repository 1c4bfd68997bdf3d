"""A spoken card number never reaches the events, the store or the logs."""

from __future__ import annotations

import re
from pathlib import Path

import sqlalchemy as sa
from callpilot.client import AsyncCallpilot, WavFile
from callpilot.v1 import call_pb2, common_pb2
from sqlalchemy.ext.asyncio import create_async_engine
from support import ServerProcess

CARD = "4111111111111111"
WORD_DIGITS = {
    "zero": "0",
    "oh": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}


def leaked_digits(text: str) -> bool:
    """True if 8+ consecutive digits of the test card appear, as digits or words."""
    tokens = re.findall(r"[a-z]+|\d+", text.lower())
    digits = "".join(WORD_DIGITS.get(t, t if t.isdigit() else " ") for t in tokens)
    runs = re.findall(r"\d{8,}", digits.replace(" ", "|").replace("|", " "))
    compact = re.findall(r"\d+", re.sub(r"(?<=\d) (?=\d)", "", digits))
    return any(CARD[:8] in r or "11111111" in r for r in runs + compact)


async def _dump_database(url: str) -> str:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
            rows: list[str] = []
            for name in names:
                result = await conn.execute(sa.text(f'SELECT * FROM "{name}"'))
                rows.extend(repr(tuple(r)) for r in result)
            return "\n".join(rows)
    finally:
        await engine.dispose()


async def test_spoken_card_is_masked_everywhere(
    server: ServerProcess, backend: str, card_call_wav: Path, artifacts: Path
) -> None:
    async with AsyncCallpilot(server.address) as cp:
        events = []
        async with cp.stream_call(WavFile(card_call_wav, realtime=True)) as call:
            async for event in call:
                events.append(event)
        # A text turn from a platform that transcribes by itself is masked too.
        async with cp.stream_call(None, call_pb2.CallConfig()) as call:
            await call.send_text(
                common_pb2.SPEAKER_ROLE_CUSTOMER, "my card is 4111 1111 1111 1111, cvv 123, expiry 12/27"
            )
            await call.end()
            async for event in call:
                events.append(event)
        stored = [await cp.get_call(events[0].call_id), await cp.get_call(events[-1].call_id)]

    texts = [e.transcript.text for e in events if e.HasField("transcript")]
    assert texts, "the call was transcribed"
    assert any("[CARD_NUMBER]" in t for t in texts), texts
    for event in events:
        assert not leaked_digits(str(event)), event
    for response in stored:
        assert not leaked_digits(str(response))
    assert not leaked_digits(await _dump_database(backend))
    assert not leaked_digits(server.log_path.read_text(errors="replace"))
