"""Talk to an ASGI app in this process, with its lifespan, from sync or async code.

``httpx.ASGITransport`` neither runs the app's lifespan (start-up and shutdown,
where the service loads its models and starts its batcher) nor serves blocking
clients. :class:`InProcessTransport` does both: it runs the app on an event loop
in a background thread, performs the lifespan start-up when opened and the
shutdown when closed, and forwards each request to the app. It is an ordinary
``httpx`` transport, so a client uses it with one argument; nothing here knows
which app it serves.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from typing import Any, TypeVar

import httpx

Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[Message]],
        Callable[[Message], Awaitable[None]],
    ],
    Awaitable[None],
]
T = TypeVar("T")


class LifespanError(RuntimeError):
    """The app's lifespan start-up or shutdown failed."""


class InProcessTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """An ``httpx`` transport (sync and async) serving requests from an ASGI app in-process.

    Args:
        app: The ASGI application.
        startup_timeout_s: Longest wait for the lifespan start-up (model loading).
    """

    def __init__(self, app: ASGIApp, startup_timeout_s: float = 600.0) -> None:
        self._app = app
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        # An exception in the app becomes its 500 response, as over a network.
        self._asgi = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self._shutdown: asyncio.Queue[Message] | None = None
        self._outbox: asyncio.Queue[Message] | None = None
        self._lifespan: asyncio.Task[None] | None = None
        self._closed = False
        try:
            self._run(self._startup(), startup_timeout_s)
        except BaseException:
            self._stop_loop()
            raise

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _startup(self) -> None:
        inbox: asyncio.Queue[Message] = asyncio.Queue()
        outbox: asyncio.Queue[Message] = asyncio.Queue()
        await inbox.put({"type": "lifespan.startup"})
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}

        async def run() -> None:
            try:
                await self._app(scope, inbox.get, outbox.put)
            finally:
                await outbox.put({"type": "lifespan.finished"})

        self._lifespan = asyncio.ensure_future(run())
        message = await outbox.get()
        if message["type"] == "lifespan.startup.failed":
            raise LifespanError(f"app start-up failed: {message.get('message', '')}")
        if message["type"] == "lifespan.finished":
            return  # the app does not implement lifespan
        self._shutdown, self._outbox = inbox, outbox

    async def _shutdown_app(self) -> None:
        if self._shutdown is None or self._outbox is None:
            return
        await self._shutdown.put({"type": "lifespan.shutdown"})
        message = await self._outbox.get()
        if message["type"] == "lifespan.shutdown.failed":
            raise LifespanError(f"app shutdown failed: {message.get('message', '')}")

    async def _forward(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        inner = httpx.Request(request.method, request.url, headers=request.headers, content=body)
        response = await self._asgi.handle_async_request(inner)
        content = await response.aread()
        return httpx.Response(
            response.status_code, headers=response.headers, content=content, request=request
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Serve one request from a blocking client, within the client's read timeout."""
        request.read()
        timeout = request.extensions.get("timeout", {}).get("read")
        future = asyncio.run_coroutine_threadsafe(self._forward(request), self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            raise httpx.ReadTimeout(f"no answer within {timeout} s", request=request) from exc

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Serve one request from an async client (on any event loop)."""
        await request.aread()
        future = asyncio.run_coroutine_threadsafe(self._forward(request), self._loop)
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Run the app's shutdown and stop the background loop (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._run(self._shutdown_app(), 60.0)
        finally:
            self._stop_loop()

    async def aclose(self) -> None:
        """Same as :meth:`close`."""
        self.close()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10.0)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> InProcessTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
