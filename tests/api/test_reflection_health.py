"""grpcurl-style discovery: server reflection and grpc.health.v1, with real clients."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import grpc
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from support import ServerProcess


async def test_reflection_lists_and_describes(server: ServerProcess) -> None:
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)

        async def ask(req: reflection_pb2.ServerReflectionRequest) -> reflection_pb2.ServerReflectionResponse:
            async for resp in stub.ServerReflectionInfo(iter([req])):
                return resp
            raise AssertionError("no response")

        listing = await ask(reflection_pb2.ServerReflectionRequest(list_services=""))
        names = {s.name for s in listing.list_services_response.service}
        assert {
            "callpilot.v1.AssistService",
            "callpilot.v1.DirectoryService",
            "grpc.health.v1.Health",
        } <= names

        described = await ask(
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="callpilot.v1.AssistService")
        )
        files = [
            descriptor_pb2.FileDescriptorProto.FromString(raw)
            for raw in described.file_descriptor_response.file_descriptor_proto
        ]
        service = next(s for f in files for s in f.service if s.name == "AssistService")
        methods = {m.name: m for m in service.method}
        assert methods["StreamCall"].client_streaming and methods["StreamCall"].server_streaming
        assert methods["WatchCall"].server_streaming and not methods["WatchCall"].client_streaming


async def test_health_serving(server: ServerProcess) -> None:
    async with grpc.aio.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "callpilot.v1.AssistService", "callpilot.v1.DirectoryService"):
            resp = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert resp.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_descriptor_database(server: ServerProcess) -> None:
    with grpc.insecure_channel(server.address) as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        pool = DescriptorPool(db)
        service = pool.FindServiceByName("callpilot.v1.DirectoryService")
        method = service.methods_by_name["GetCustomer"]
        assert method.output_type.full_name == "callpilot.v1.GetCustomerResponse"
        event = pool.FindMessageTypeByName("callpilot.v1.CallEvent")
        assert "transcript" in event.fields_by_name


def _buf_curl(*args: str) -> subprocess.CompletedProcess[str]:
    buf = Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "buf"
    return subprocess.run(
        [str(buf), "curl", "--protocol", "grpc", "--http2-prior-knowledge", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_buf_curl_discovers_and_calls_by_reflection(server: ServerProcess) -> None:
    """The README's examples, run with buf curl (a grpcurl-like client that uses reflection)."""
    base = f"http://{server.address}"
    listed = _buf_curl("--list-methods", base)
    assert listed.returncode == 0, listed.stderr
    assert "callpilot.v1.AssistService/StreamCall" in listed.stdout
    assert "callpilot.v1.DirectoryService/GetCustomer" in listed.stdout

    got = _buf_curl("-d", '{"customer_id": "C-1001"}', f"{base}/callpilot.v1.DirectoryService/GetCustomer")
    assert got.returncode == 0, got.stderr
    body = json.loads(got.stdout)
    assert body["customer"]["name"] == "Maria Garcia"

    missing = _buf_curl("-d", '{"order_number": "00000"}', f"{base}/callpilot.v1.DirectoryService/GetOrder")
    assert missing.returncode != 0 and "not_found" in missing.stderr.lower()

    health = _buf_curl("-d", "{}", f"{base}/grpc.health.v1.Health/Check")
    assert health.returncode == 0 and "SERVING" in health.stdout
