"""grpc-web for browsers: the proxy (`proxy`), its wire format (`wire`) and its CORS policy (`cors`)."""

from __future__ import annotations

from callpilot.gateway.grpcweb.proxy import ACTIVE, setup

__all__ = ["ACTIVE", "setup"]
