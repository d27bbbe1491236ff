"""What the server checks before and while it reads a request, in front of the app (pure ASGI).

- draining: once shutdown has begun, every new request but /health gets 503 + `Connection: close`
  (never a reset);
- the API key, when the server has one (`Authorization: Bearer KEY`, `X-API-Key: KEY`, or HTTP Basic with
  the key as password, which is what a browser sends after asking for it; the liveness and readiness probes
  and the model server's page at / stay open), compared in constant time and never logged;
- the body size limit, enforced while the body streams in (chunked uploads have no Content-Length),
  so an oversize upload is refused after `max_body_bytes`, not after reading all of it;
- the body deadline: a body that trickles in slower than `body_timeout_s` in all gets 408.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException

OPEN_PATHS = frozenset({"/health", "/ready", "/"})  # probes, and the page (it holds no data; its script sends the key)
CLOSE = {"Connection": "close"}


@dataclass
class Lifecycle:
    """Shared by the app and the server: is the model warm, has shutdown begun."""

    ready: bool = False
    draining: bool = False


class Guards:
    def __init__(
        self,
        app: Any,
        lifecycle: Lifecycle,
        max_body_bytes: int,
        body_timeout_s: float,
        api_key: str | None = None,
        open_paths: frozenset[str] = OPEN_PATHS,
    ) -> None:
        self.app, self.lifecycle = app, lifecycle
        self.max_body_bytes, self.body_timeout_s = max_body_bytes, body_timeout_s
        self.api_key = api_key.encode() if api_key else None
        self.open_paths = open_paths

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {name.decode("latin-1").lower(): value for name, value in scope["headers"]}
        if self.lifecycle.draining and scope["path"] != "/health":
            detail = "the server is shutting down; retry (on another instance)"
            return await reply(send, 503, detail, {**CLOSE, "Retry-After": "1"})
        if self.api_key is not None and scope["path"] not in self.open_paths and not self.authorised(headers):
            detail = "missing or wrong API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'"
            # Basic first: a browser asks for it (any user name, the key as password); scripts send Bearer
            return await reply(send, 401, detail, {"WWW-Authenticate": 'Basic realm="minbert", Bearer'})
        length = headers.get("content-length", b"")
        if length.isdigit() and int(length) > self.max_body_bytes:
            detail = f"request body of {int(length)} bytes; the limit is {self.max_body_bytes}"
            return await reply(send, 413, detail, CLOSE)
        await self.app(scope, self.bounded(receive), send)

    def authorised(self, headers: dict[str, bytes]) -> bool:
        assert self.api_key is not None
        given = headers.get("x-api-key")
        authorization = headers.get("authorization", b"")
        scheme, _, credentials = authorization.partition(b" ")
        if given is None and scheme.lower() == b"bearer":
            given = credentials.strip()
        elif given is None and scheme.lower() == b"basic":
            given = basic_password(credentials.strip())
        return given is not None and hmac.compare_digest(given, self.api_key)

    def bounded(self, receive: Any) -> Any:
        """`receive`, counting body bytes and keeping the deadline; the app sees an HTTPException past either."""
        read = 0
        deadline: float | None = None

        async def receive_bounded() -> dict:
            nonlocal read, deadline
            loop = asyncio.get_running_loop()
            deadline = deadline or loop.time() + self.body_timeout_s
            try:
                async with asyncio.timeout_at(deadline):  # cheaper than wait_for: no task per message
                    message = await receive()
            except TimeoutError:
                detail = f"the request body did not arrive within {self.body_timeout_s:g} s"
                raise HTTPException(408, detail, headers=CLOSE) from None
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > self.max_body_bytes:
                    detail = f"request body over {self.max_body_bytes} bytes (the limit); send less per request"
                    raise HTTPException(413, detail, headers=CLOSE)
            return message

        return receive_bounded


def basic_password(credentials: bytes) -> bytes | None:
    """The password of HTTP Basic credentials (`base64(user:password)`); None when they do not decode."""
    try:
        _, colon, password = base64.b64decode(credentials, validate=True).partition(b":")
    except (binascii.Error, ValueError):
        return None
    return password if colon else None


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})


class LoopbackHosts:
    """In front of a server bound to loopback: a request whose Host header names another machine is refused
    (421), so a web page elsewhere cannot reach it through a DNS name it rebinds to 127.0.0.1."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1").lower()
            name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
            if host and name not in LOOPBACK_NAMES and not name.startswith("127."):
                detail = f"Host {host!r} is not this machine; the server listens on loopback only"
                return await reply(send, 421, detail, CLOSE)
        await self.app(scope, receive, send)


async def reply(send: Any, status: int, detail: str, headers: dict[str, str]) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
