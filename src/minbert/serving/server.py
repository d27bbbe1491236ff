"""The HTTP server around the app: binding, connection time limits, graceful shutdown.

uvicorn does the HTTP; this module adds what a server facing real clients needs and uvicorn leaves
out. A connection must send a complete request head within `header_timeout_s` of opening (or of its
previous response), so idle and slow-header connections are closed instead of held forever. On
SIGTERM the listening socket closes, in-flight requests finish, and a keep-alive request that arrives
in the next `drain_s` seconds gets 503 + `Connection: close` instead of a reset. The address is
printed only once the socket is bound and the model is warm, and a taken port is a one-line error.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from minbert.errors import MinbertError
from minbert.serving.guards import Lifecycle, LoopbackHosts

log = logging.getLogger(__name__)
REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


def protocol(header_timeout_s: float, drain_s: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a deadline for each request head and a short drain on shutdown."""

    class TimedH11(H11Protocol):
        head_timer: asyncio.TimerHandle | None = None
        received = False  # any bytes of the current request head

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)  # type: ignore[arg-type]
            self.arm()

        def arm(self) -> None:
            self.disarm()
            self.received = False
            self.head_timer = self.loop.call_later(header_timeout_s, self.head_too_slow)

        def disarm(self) -> None:
            if self.head_timer is not None:
                self.head_timer.cancel()
                self.head_timer = None

        def idle(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def data_received(self, data: bytes) -> None:
            self.received = True
            super().data_received(data)
            if not self.idle():  # a complete head arrived: the request is the app's now
                self.disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self.arm()

        def head_too_slow(self) -> None:
            if self.idle() and not self.transport.is_closing():
                if self.received:
                    self.transport.write(REQUEST_TIMEOUT)
                self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            self.disarm()
            super().connection_lost(exc)

        def shutdown(self) -> None:
            if not self.idle():
                super().shutdown()  # the response in flight goes out, then the connection closes
                return
            self.disarm()  # keep-alive connection: answer what arrives with 503 for a moment, then close
            self.head_timer = self.loop.call_later(drain_s, self.transport.close)

    return TimedH11


class Server(uvicorn.Server):
    """uvicorn's server, telling the app when shutdown begins and the address once it is bound."""

    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle, announce: str) -> None:
        super().__init__(config)
        self.lifecycle, self.announce = lifecycle, announce

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            log.info("%s", self.announce)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.lifecycle.draining = True
        await super().shutdown(sockets)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or a one-line error saying what to change."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise MinbertError(f"--host {host}: not an address this machine can listen on ({e.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        hint = "choose another with --port" if e.errno in (98, 48) else "check --host and --port"
        raise MinbertError(f"cannot listen on {host}:{port}: {e.strerror}; {hint}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build(
    app: FastAPI,
    sock: socket.socket,
    host: str,
    *,
    header_timeout_s: float = 10.0,
    keep_alive_s: float = 5.0,
    drain_s: float = 1.0,
    graceful_s: float = 30.0,
    log_level: str = "info",
) -> Server:
    """The server for `app` on a bound socket (`host` as the user gave it, for the warning)."""
    if not is_loopback(host) and not app.state.api_key:
        log.warning(
            "listening on %s without --api-key-file: anyone who can reach this address can use this server", host
        )
    served: Any = LoopbackHosts(app) if is_loopback(host) else app
    config = uvicorn.Config(
        served,
        http=protocol(header_timeout_s, drain_s),
        timeout_keep_alive=int(max(1, keep_alive_s)),
        timeout_graceful_shutdown=int(graceful_s),
        log_level=log_level,
        lifespan="on",
    )
    bound_host, bound_port = sock.getsockname()[:2]
    return Server(config, app.state.lifecycle, f"{app.state.announce} on http://{bound_host}:{bound_port}")


def run(app: FastAPI, sock: socket.socket, host: str, header_timeout_s: float = 10.0) -> None:
    """Serve `app` on the bound socket until SIGINT/SIGTERM."""
    build(app, sock, host, header_timeout_s=header_timeout_s).run(sockets=[sock])
