"""The FastAPI app: ``create_app(settings)`` wires settings, models, batcher, store and routers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import torch
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server import ws
from server.batching import Batcher
from server.deps import Services, get_settings
from server.metrics import Metrics
from server.planning import PlanJob, PlanOutcome, run_jobs
from server.registry import ModelRegistry
from server.routers import meta, plans
from server.schemas import PlanRequestJSON, validation_detail
from server.settings import Settings
from server.store import BoundedStore

log = logging.getLogger(__name__)


class BodyLimit:
    """ASGI middleware: refuse bodies over ``max_bytes`` with 413, streamed or not."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, counting body bytes."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._refuse(send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, f"request body larger than {self.max_bytes} bytes")
            return message

        await self.app(scope, limited, send)

    async def _refuse(self, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"request body larger than {self.max_bytes} bytes"}, status_code=413
        )
        await response({"type": "http"}, _empty_receive, send)


async def _empty_receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def _services(settings: Settings, registry: ModelRegistry | None) -> Services:
    metrics = Metrics()
    if registry is None:
        registry = ModelRegistry.from_dir(settings.models_dir, settings.device)
    batcher: Batcher[PlanJob, PlanOutcome] = Batcher(
        run_jobs,
        window_s=settings.batch_window_ms / 1000.0,
        max_batch=settings.max_batch,
        on_queue_depth=metrics.queue_depth.set,
        on_batch=metrics.batch_size.observe,
    )
    return Services(settings, registry, batcher, BoundedStore(settings.plan_store_size), metrics)


def _with_body_schemas(app: FastAPI, *models: type[BaseModel]) -> None:
    """Put request-body models that no route parameter declares into the OpenAPI components.

    ``POST /v1/plan`` reads its body itself (JSON or multipart), so FastAPI never sees
    :class:`PlanRequestJSON`; without this its ``$ref`` in the spec would dangle.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schemas = generate().setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                body = model.model_json_schema(ref_template="#/components/schemas/{model}")
                schemas.update(body.pop("$defs", {}))
                schemas[model.__name__] = body
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings | None = None, registry: ModelRegistry | None = None) -> FastAPI:
    """Build the app. Models load at start-up from ``settings.models_dir`` unless given."""
    settings = settings or get_settings()
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = _services(settings, registry)
        services.batcher.start()
        app.state.services = services
        log.info("serving %d model(s) on %s", len(services.registry), settings.device)
        yield
        await services.batcher.stop()

    app = FastAPI(
        title="worldplan",
        version="1",
        summary="Latent model-predictive planning: observation + goal images in, actions out.",
        lifespan=lifespan,
    )
    app.include_router(plans.router)
    app.include_router(meta.router)
    app.include_router(ws.router)
    _with_body_schemas(app, PlanRequestJSON)
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)

    @app.middleware("http")
    async def count_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        request.app.state.services.metrics.requests.labels(path, str(response.status_code)).inc()
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_detail(exc.errors())}, status_code=422)

    return app
