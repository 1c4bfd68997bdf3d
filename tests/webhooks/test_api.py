"""WebhookService over gRPC: endpoint management, deliveries, and clear errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from callpilot.client import AsyncCallpilot, CallpilotError
from callpilot.client.webhooks import Webhooks
from callpilot.server.app import CallpilotServer
from callpilot.server.config import Settings


@pytest.fixture
async def hooks(tmp_path: Path) -> AsyncIterator[Webhooks]:
    settings = Settings.from_env(
        {},
        port=0,
        data_dir=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        stt="null",
    )
    server = CallpilotServer(settings)
    await server.start()
    try:
        async with AsyncCallpilot(f"127.0.0.1:{server.port}") as cp:
            yield Webhooks(cp)
    finally:
        await server.stop()


async def test_create_list_update_delete(hooks: Webhooks) -> None:
    endpoint, secret = await hooks.create(
        "https://crm.example/hooks", ["call.ended", "tool.decided", "call.ended"], description="CRM"
    )
    assert secret.startswith("whsec_") and len(secret) > 40
    assert endpoint.endpoint_id.startswith("we_")
    assert list(endpoint.event_types) == ["call.ended", "tool.decided"]
    assert endpoint.enabled and endpoint.description == "CRM"
    [listed] = await hooks.list()
    assert listed == endpoint

    disabled = await hooks.update(endpoint.endpoint_id, enabled=False)
    assert not disabled.enabled and disabled.disabled_reason
    changed = await hooks.update(endpoint.endpoint_id, enabled=True, event_types=["call.started"])
    assert changed.enabled and not changed.disabled_reason
    assert list(changed.event_types) == ["call.started"]
    assert changed.url == "https://crm.example/hooks"
    assert await hooks.deliveries(endpoint.endpoint_id) == []

    await hooks.delete(endpoint.endpoint_id)
    assert await hooks.list() == []
    with pytest.raises(CallpilotError) as info:
        await hooks.delete(endpoint.endpoint_id)
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    assert "ListWebhookEndpoints" in info.value.message


@pytest.mark.parametrize(
    ("url", "events", "field", "words"),
    [
        ("", ["call.ended"], "url", "required"),
        ("ftp://crm.example/x", ["call.ended"], "url", "http://"),
        ("https://crm.example/x", [], "event_types", "at least one"),
        ("https://crm.example/x", ["call.ended", "call.exploded"], "event_types", "call.exploded"),
    ],
)
async def test_bad_input_names_the_field(
    hooks: Webhooks, url: str, events: list[str], field: str, words: str
) -> None:
    with pytest.raises(CallpilotError) as info:
        await hooks.create(url, events)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    [violation] = info.value.violations
    assert violation.field == field and words in violation.description
    assert await hooks.list() == []


async def test_update_needs_fields_and_a_known_endpoint(hooks: Webhooks) -> None:
    endpoint, _ = await hooks.create("http://127.0.0.1:9/x", ["call.ended"])
    with pytest.raises(CallpilotError) as info:
        await hooks.update(endpoint.endpoint_id)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(CallpilotError) as info:
        await hooks.update("we_nope", enabled=True)
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(CallpilotError) as info:
        await hooks.deliveries("we_nope")
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(CallpilotError) as info:
        await hooks.deliveries(endpoint.endpoint_id, page_size=500)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
