"""The streamable HTTP transport: `/mcp`, loopback by default, optional bearer token, DNS-rebinding checks."""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from server.settings import Settings, SettingsError

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class BearerTokenMiddleware:
    """Demands `Authorization: Bearer <token>` on every HTTP request; compares in constant time."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self._expected):
                await _unauthorized(send)
                return
        await self.app(scope, receive, send)


async def _unauthorized(send: Send) -> None:
    body = b'{"error":"unauthorized","message":"Send Authorization: Bearer <GENRESULT_HTTP_TOKEN>."}'
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b'Bearer realm="genresult-mcp"'),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def transport_security(host: str, port: int, allowed_hosts: list[str]) -> TransportSecuritySettings:
    """Host/Origin validation stays on everywhere; off loopback the allowed names must be given."""
    hosts = [f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]")] if is_loopback(host) else []
    hosts += allowed_hosts
    origins = [f"http://{h}" for h in hosts] + [f"https://{h}" for h in hosts]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


def check_bind(host: str, settings: Settings, allowed_hosts: list[str]) -> None:
    if is_loopback(host):
        return
    if settings.http_token is None or not allowed_hosts:
        raise SettingsError(
            f"Refusing to listen on {host}, which is reachable from other machines, without both "
            "GENRESULT_HTTP_TOKEN (clients must send it as a bearer token) and --allow-host NAME:PORT "
            "(the Host names clients use). Use --host 127.0.0.1 for local use."
        )


def http_app(
    mcp: MCPServer[Any], settings: Settings, *, host: str, port: int, stateless: bool, allowed_hosts: list[str]
) -> ASGIApp:
    check_bind(host, settings, allowed_hosts)
    app: ASGIApp = mcp.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=stateless,
        transport_security=transport_security(host, port, allowed_hosts),
        host=host,
    )
    if settings.http_token:
        app = BearerTokenMiddleware(app, settings.http_token)
    return app
