"""A server killed with SIGKILL between the outbox write and the delivery loses nothing.

A real `callpilot serve` (text turns, no speech model) queues webhooks for
a call while the receiver is down, so every attempt is refused; it is then
killed with SIGKILL, restarted on the same database, and the receiver comes
up: every event arrives, verified with the standardwebhooks library,
exactly once per id, and no card number is in any body. The endpoint is
created and its deliveries read with the `callpilot webhooks` CLI.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from pathlib import Path

from callpilot.client import AsyncCallpilot
from callpilot.client.webhooks import EVENT_TYPES, Webhooks
from callpilot.v1 import assist_service_pb2, call_pb2, common_pb2, events_pb2
from callpilot.v1 import webhook_service_pb2 as pb
from support import VENV_BIN, ServerProcess, free_port
from webhooks.receiver import Receiver

CARD_TURN = "Hi, I need a refund for order 78901. My card is 4111 1111 1111 1111, expiry 12/27."


def _cli(*args: str) -> str:
    done = subprocess.run(
        [str(VENV_BIN / "callpilot"), "webhooks", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _leaks_card(body: str) -> bool:
    digits = re.sub(r"[\s-]", "", body)
    return "4111111111111111" in digits or "11111111" in digits


async def _call_with_feedback(address: str) -> str:
    async with (
        AsyncCallpilot(address) as cp,
        cp.stream_call(None, call_pb2.CallConfig(), end_when_audio_ends=False) as call,
    ):
        events: list[events_pb2.CallEvent] = []
        iterator = call.__aiter__()
        await call.send_text(common_pb2.SPEAKER_ROLE_CUSTOMER, CARD_TURN)
        while not any(e.HasField("suggestion_completed") for e in events):
            events.append(await asyncio.wait_for(iterator.__anext__(), 30))
        [suggestion] = [e.suggestion_completed for e in events if e.HasField("suggestion_completed")]
        await call.feedback(suggestion.suggestion_id, assist_service_pb2.FEEDBACK_KIND_USED)
        await call.end("resolved")
        async for event in iterator:
            events.append(event)
    assert events[-1].HasField("call_ended")
    return events[0].call_id


async def _deliveries(address: str, endpoint_id: str) -> list[pb.WebhookDelivery]:
    async with AsyncCallpilot(address) as cp:
        return await Webhooks(cp).deliveries(endpoint_id)


async def _until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        "CALLPILOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        "CALLPILOT_DATA_DIR": str(tmp_path),
        "CALLPILOT_STT": "null",
        # A 2 s timeout makes the lease 9 s: a killed worker's rows are due again after that.
        "CALLPILOT_WEBHOOK_TIMEOUT_S": "2",
        "CALLPILOT_WEBHOOK_RETRY_BASE_S": "0.2",
        "CALLPILOT_WEBHOOK_RETRY_CAP_S": "0.5",
        "CALLPILOT_WEBHOOK_POLL_S": "0.1",
    }


async def test_sigkill_before_delivery_then_restart_delivers_each_event_once(
    tmp_path: Path, artifacts: Path
) -> None:
    env = _env(tmp_path)
    log = artifacts / "webhooks-sigkill.log"
    receiver = Receiver(port=free_port())
    server = ServerProcess(env, log).start()
    restarted: ServerProcess | None = None
    try:
        created = json.loads(
            _cli(
                "create",
                "--url",
                receiver.url,
                "--events",
                ",".join(EVENT_TYPES),
                "--server",
                server.address,
                "--json",
            )
        )
        receiver.secret = created["secret"]
        assert receiver.secret.startswith("whsec_")
        endpoint_id = created["endpoint"]["endpointId"]
        listed = _cli("list", "--server", server.address)
        assert endpoint_id in listed and "secret" not in listed and receiver.secret not in listed

        call_id = await _call_with_feedback(server.address)

        async def queued_and_refused() -> bool:
            ds = await _deliveries(server.address, endpoint_id)
            types = sorted(d.event_type for d in ds)
            return types == ["call.ended", "call.started", "suggestion.feedback"] and all(
                d.attempts for d in ds
            )

        await _until(queued_and_refused, 60, "three deliveries, each refused at least once")
        before = {d.delivery_id for d in await _deliveries(server.address, endpoint_id)}
        server.kill()  # SIGKILL: the outbox rows are written, nothing was delivered

        restarted = ServerProcess(env, log).start()
        await receiver.start()
        await receiver.wait_for(3, timeout=60)

        async def all_delivered() -> bool:
            assert restarted is not None
            ds = await _deliveries(restarted.address, endpoint_id)
            return all(d.state == pb.WEBHOOK_DELIVERY_STATE_DELIVERED for d in ds)

        await _until(all_delivered, 60, "every delivery marked delivered")
        shown = _cli("deliveries", endpoint_id, "--server", restarted.address)
    finally:
        server.stop()
        if restarted is not None:
            restarted.stop()
        await receiver.stop()

    (artifacts / "webhooks-sigkill-bodies.json").write_text(json.dumps(receiver.bodies, indent=1))
    assert receiver.bad_signatures == 0
    assert set(receiver.messages) == before  # the ids queued before the crash, no new ones
    assert set(receiver.accepted.values()) == {1}, receiver.dump()
    assert receiver.types() == ["call.ended", "call.started", "suggestion.feedback"]
    assert all(m["data"]["call_id"] == call_id for m in receiver.messages.values())
    assert "delivered" in shown and "no response" in shown and "HTTP 204" in shown
    for body in receiver.bodies:
        assert not _leaks_card(body), body
    ended = next(m["data"] for m in receiver.messages.values() if m["type"] == "call.ended")
    assert ended["reason"] == "CALL_END_REASON_CLIENT_ENDED"
    assert ended["suggestions_used"], ended


async def test_sigkill_mid_delivery_resends_the_same_id_and_the_receiver_deduplicates(
    tmp_path: Path, artifacts: Path
) -> None:
    """The receiver got call.ended but the sender died before hearing 204: same id again."""
    env = _env(tmp_path)
    log = artifacts / "webhooks-sigkill-mid.log"
    receiver = await Receiver(hang_s=5.0).start()
    receiver.slow_first_of = {"call.ended"}
    server = ServerProcess(env, log).start()
    restarted: ServerProcess | None = None
    try:
        created = json.loads(
            _cli(
                "create",
                "--url",
                receiver.url,
                "--events",
                ",".join(EVENT_TYPES),
                "--server",
                server.address,
                "--json",
            )
        )
        receiver.secret = created["secret"]
        endpoint_id = created["endpoint"]["endpointId"]
        await _call_with_feedback(server.address)
        async with asyncio.timeout(60):
            while "call.ended" not in receiver.types():
                receiver.changed.clear()
                await receiver.changed.wait()
        server.kill()  # mid-delivery: the receiver has the body, the outbox row is still pending
        [ended_id] = [i for i, m in receiver.messages.items() if m["type"] == "call.ended"]

        restarted = ServerProcess(env, log).start()

        async def all_delivered() -> bool:
            assert restarted is not None
            ds = await _deliveries(restarted.address, endpoint_id)
            return len(ds) == 3 and all(d.state == pb.WEBHOOK_DELIVERY_STATE_DELIVERED for d in ds)

        await _until(all_delivered, 60, "every delivery marked delivered")
        deliveries = await _deliveries(restarted.address, endpoint_id)
    finally:
        server.stop()
        if restarted is not None:
            restarted.stop()
        await receiver.stop()

    assert receiver.bad_signatures == 0
    # Deduplicated by id, each event once...
    assert receiver.types() == ["call.ended", "call.started", "suggestion.feedback"]
    assert {d.delivery_id for d in deliveries} == set(receiver.messages)
    # ...though the one in flight at the kill was sent twice, with the same id.
    assert receiver.requests[ended_id] == 2 and receiver.accepted[ended_id] == 2
    assert all(receiver.accepted[i] == 1 for i in receiver.messages if i != ended_id)
    [ended] = [d for d in deliveries if d.delivery_id == ended_id]
    assert [a.http_status for a in ended.attempts] == [204]  # the killed attempt left no record
