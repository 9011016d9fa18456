"""The production HTTP server of the web app: waitress, which buffers every request before a
thread runs the app, with time limits on slow clients.

Why waitress: one event loop reads every connection without blocking; a request reaches one of
``threads`` app threads only once its headers and body are in (the body spooled to a temporary
file past 512 KB). A client that trickles its headers (slow-loris) or its upload holds a
socket, never an app thread, so ``/healthz`` answers whatever slow clients do. On top of
waitress's idle timeout, ``DeadlineChannel`` bounds the time a request may take to arrive: its
headers within ``header_timeout_s`` of its first byte, its whole body within
``upload_timeout_s``. One process: the rate limits and the view cache are exact (no
per-process copies), and there is no control socket or pid file to share with other instances.
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

__all__ = ["ServerLimits", "make_server"]

log = logging.getLogger(__name__)


class ServerLimits(BaseModel):
    """How long clients may take and how many may be connected.

    - ``header_timeout_s``: from a request's first byte to the end of its headers.
    - ``upload_timeout_s``: from a request's first byte to the end of its body (uploads).
    - ``idle_timeout_s``: a connection with no byte in either direction this long is closed.
    - ``connection_limit``: connections held at once (slow ones included); past it, new
      connections wait in the listen backlog.
    - ``max_body_bytes``: larger bodies are refused (413) before the app sees them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    threads: int = Field(default=8, ge=1, le=256)
    header_timeout_s: float = Field(default=20.0, gt=0)
    upload_timeout_s: float = Field(default=3600.0, gt=0)
    idle_timeout_s: int = Field(default=60, ge=1)
    connection_limit: int = Field(default=500, ge=10)
    max_body_bytes: int = Field(default=8 * 2**30, ge=1)


@dataclass
class _Started:
    """When the request ``parser`` is reading began to arrive."""

    at: float
    parser: Any


def _channel_class() -> Any:
    class DeadlineChannel(HTTPChannel):
        """A channel that notes when its current (incomplete) request started arriving."""

        arriving: _Started | None = None

        def received(self, data: bytes) -> bool:
            now = time.monotonic()
            done = bool(super().received(data))
            parser = self.request  # None once every request received so far is complete
            if parser is None:
                self.arriving = None
            elif self.arriving is None or self.arriving.parser is not parser:
                self.arriving = _Started(now, parser)
            return done

        def late(self, now: float, limits: ServerLimits) -> str | None:
            """Why this channel's request is too late to finish arriving (None if it is not)."""
            started = self.arriving
            if started is None or started.parser is not self.request:
                return None
            waited_s = now - started.at
            if not started.parser.headers_finished and waited_s > limits.header_timeout_s:
                return f"headers not complete after {limits.header_timeout_s:g} s"
            if waited_s > limits.upload_timeout_s:
                return f"request body not complete after {limits.upload_timeout_s:g} s"
            return None

    return DeadlineChannel


def make_server(app: Any, host: str, port: int, limits: ServerLimits, *,
                sock: socket.socket | None = None) -> Any:
    """A waitress server of ``app`` on ``host:port`` (call ``.run()``; ``.close()`` to stop).

    With ``sock`` (a listening socket shared by forked processes), it serves on that socket.
    """
    channel_class = _channel_class()

    class DeadlineServer(TcpWSGIServer):
        def maintenance(self, now: float) -> None:
            super().maintenance(now)
            mono = time.monotonic()
            for channel in list(self.active_channels.values()):
                reason = channel.late(mono, limits) if hasattr(channel, "late") else None
                if reason is not None and not channel.will_close:
                    log.warning("closing the connection of %s: %s", channel.addr, reason)
                    channel.will_close = True

    DeadlineServer.channel_class = channel_class
    where: dict[str, Any] = {"sockets": [sock]} if sock is not None else {"host": host,
                                                                            "port": port}
    adjustments = {
        **where, "threads": limits.threads,
        "channel_timeout": limits.idle_timeout_s, "cleanup_interval": 1,
        "connection_limit": limits.connection_limit,
        "max_request_body_size": limits.max_body_bytes, "ident": "spared-bench",
        "clear_untrusted_proxy_headers": False, "expose_tracebacks": False,
        # poll(), not select(): no FD_SETSIZE ceiling with hundreds of connections.
        "asyncore_use_poll": True,
    }
    adj = Adjustments(**adjustments)
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(adj.threads)
    if sock is not None:
        return DeadlineServer(app, {}, True, sock, dispatcher=dispatcher, adj=adj,
                              bind_socket=False, sockinfo=(sock.family, sock.type, sock.proto,
                                                           sock.getsockname()))
    return DeadlineServer(app, {}, dispatcher=dispatcher, adj=adj, sockinfo=adj.listen[0])
