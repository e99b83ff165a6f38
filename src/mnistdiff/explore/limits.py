"""What the explorer's server takes from a client, in size and in time.

- A request body is read by `BodyLimit` with a hard cap, counted in the bytes that arrive, whatever
  the headers say (a chunked body, a Content-Length that lies), and within `BODY_TIMEOUT` seconds.
- A connection that sends no whole request head within `IDLE_TIMEOUT` seconds of opening, or of its
  last answer, is closed (`DropsIdleClients`, uvicorn's h11 protocol with a timer from the start).
"""

from __future__ import annotations

import asyncio

import h11
from starlette.responses import JSONResponse
from uvicorn.protocols.http.h11_impl import H11Protocol

MAX_BODY = 64 * 1024  # two 28x28 images as JSON are about 8 KB
BODY_TIMEOUT = 10.0  # seconds for a whole body to arrive
IDLE_TIMEOUT = 10.0  # seconds a connection may wait, sending nothing whole, before it is closed


class BodyLimit:
    """ASGI middleware: a POST must say its length (411 otherwise), and its body is read here, at most
    `limit` bytes (413) within `timeout` seconds (408), before the app sees it. A refusal closes the
    connection, so the rest of an oversized body is never read."""

    def __init__(self, app, limit: int = MAX_BODY, timeout: float = BODY_TIMEOUT):
        self.app, self.limit, self.timeout = app, limit, timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"")
        if not length.isdigit():
            return await _reject(scope, receive, send, 411, "say the body's Content-Length")
        if int(length) > self.limit:
            return await _reject(scope, receive, send, 413, f"request body over {self.limit} bytes")
        body, status = await self._read(receive)
        if status == 0:
            return None  # the client left
        if status != 200:
            message = (f"request body over {self.limit} bytes" if status == 413
                       else f"the request body did not arrive within {self.timeout:g} s")
            return await _reject(scope, receive, send, status, message)
        return await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive) -> tuple[bytes, int]:
        """(the body, 200), or (b"", 413 / 408 / 0 for a client that left)."""
        chunks, size = [], 0
        deadline = asyncio.get_running_loop().time() + self.timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), max(left, 0))
            except asyncio.TimeoutError:
                return b"", 408
            if message["type"] == "http.disconnect":
                return b"", 0
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return b"", 413
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), 200


def _replay(body: bytes, receive):
    """A `receive` that gives the app the body read already, then waits on the client as before."""
    given = False

    async def replay():
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _reject(scope, receive, send, status: int, message: str) -> None:
    response = JSONResponse({"error": message}, status_code=status, headers={"Connection": "close"})
    await response(scope, receive, send)


class DropsIdleClients(H11Protocol):
    """uvicorn's h11 protocol, whose keep-alive timer runs only after an answer: here a timer runs
    from the connection's start and after each answer until a whole request head has arrived, so a
    client that opens a connection and sends nothing (or half a head) is dropped after
    `timeout_keep_alive` seconds."""

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # a request head arrived whole
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE:
            self._arm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.timeout_keep_alive, self._drop)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _drop(self) -> None:
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()
