"""Sync and async clients for the planning service (one method per endpoint).

Both take either a base URL or an ``httpx`` transport (for example
:class:`clients.inprocess.InProcessTransport` around an ASGI app, or
``httpx.MockTransport`` in tests), so that running without a network is one
argument. Failures to *connect* are retried with exponential backoff (the
request never reached the server, so a retry cannot duplicate it); timeouts,
4xx and 5xx answers are never retried and surface as
:class:`clients.errors.WorldplanError` subclasses carrying the status code and
the server's ``detail``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from clients.errors import (
    ResponseFormatError,
    WorldplanConnectionError,
    WorldplanError,
    WorldplanTimeoutError,
    error_for,
)
from clients.images import ImageFormat, ImageInput, image_bytes, to_base64
from clients.types import Health, ModelInfo, PlanOptions, PlanRecord, PlanResponse, PreviewFormat

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "http://worldplan"
"""Base URL used with a transport when none is given (the host is not contacted)."""
API_KEY_HEADER = "X-API-Key"
Upload = Literal["json", "multipart"]
T = TypeVar("T")

# Errors raised before any byte reached the server: safe to retry.
_RETRYABLE: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout)
_MODELS = TypeAdapter(list[ModelInfo])


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of connection failures: ``attempts`` tries in all, sleeping in between.

    The n-th retry waits ``min(backoff_s * 2 ** (n - 1), max_backoff_s)`` seconds.
    """

    attempts: int = 4
    backoff_s: float = 0.25
    max_backoff_s: float = 4.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ValueError(
                f"need attempts >= 1 and non-negative backoffs, got {self.attempts}, "
                f"{self.backoff_s}, {self.max_backoff_s}"
            )

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        return float(min(self.backoff_s * 2 ** (retry - 1), self.max_backoff_s))


@dataclass(frozen=True)
class _Call:
    """One request: what to send, whether it needs the key, and how to read the answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], Any]
    json_body: Any = None
    files: dict[str, tuple[str, bytes, str]] | None = None
    data: dict[str, str] | None = None
    params: dict[str, str] = field(default_factory=dict)


def _model(cls: type[BaseModel]) -> Callable[[httpx.Response], Any]:
    def parse(response: httpx.Response) -> Any:
        try:
            return cls.model_validate_json(response.content)
        except ValidationError as exc:
            raise ResponseFormatError(
                f"{response.request.url.path} answered a body that is not a {cls.__name__}: "
                f"{exc.error_count()} error(s), first: {exc.errors()[0]['msg']}",
                response.status_code,
            ) from exc

    return parse


def _models(response: httpx.Response) -> list[ModelInfo]:
    try:
        return _MODELS.validate_json(response.content)
    except ValidationError as exc:
        raise ResponseFormatError(
            f"/v1/models answered a body that is not a list of ModelInfo: {exc}",
            response.status_code,
        ) from exc


def _content(response: httpx.Response) -> bytes:
    return response.content


def _text(response: httpx.Response) -> str:
    return response.text


def _plan_call(
    observation: ImageInput,
    goal: ImageInput,
    options: PlanOptions,
    upload: Upload,
    image_format: ImageFormat,
) -> _Call:
    obs = image_bytes(observation, image_format, "observation")
    goal_b = image_bytes(goal, image_format, "goal")
    parse = _model(PlanResponse)
    if upload == "json":
        body = {**options.body(), "observation": to_base64(obs), "goal": to_base64(goal_b)}
        return _Call("POST", "/v1/plan", parse, json_body=body)
    if upload == "multipart":
        mime = "image/png" if image_format == "png" else "application/octet-stream"
        files = {
            "observation": (f"observation.{image_format}", obs, mime),
            "goal": (f"goal.{image_format}", goal_b, mime),
        }
        data = {"options": json.dumps(options.body())}
        return _Call("POST", "/v1/plan", parse, files=files, data=data)
    raise ValueError(f"upload must be 'json' or 'multipart', got {upload!r}")


def _quote(plan_id: str) -> str:
    if not plan_id:
        raise ValueError("plan_id must not be empty")
    return urllib.parse.quote(plan_id, safe="")


def _preview_call(plan_id: str, fmt: PreviewFormat) -> _Call:
    if fmt not in ("html", "png", "gif"):
        raise ValueError(f"preview format must be 'html', 'png' or 'gif', got {fmt!r}")
    return _Call("GET", f"/v1/plans/{_quote(plan_id)}/preview", _content, params={"format": fmt})


class _Base:
    """Settings and request helpers shared by the sync and async clients."""

    def __init__(self, api_key: str | None, timeout_s: float, retry: RetryPolicy | None) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.retry = retry or RetryPolicy()
        self._headers = {API_KEY_HEADER: api_key} if api_key else {}
        self._timeout = httpx.Timeout(timeout_s)

    def _request_kwargs(self, call: _Call) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"params": call.params or None}
        if call.json_body is not None:
            kwargs["json"] = call.json_body
        if call.files is not None:
            kwargs["files"] = call.files
            kwargs["data"] = call.data
        return kwargs

    def _fail(self, call: _Call, exc: Exception, tries: int) -> WorldplanError:
        if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
            return WorldplanTimeoutError(f"{call.method} {call.path} timed out: {exc!r}")
        return WorldplanConnectionError(
            f"{call.method} {call.path} failed after {tries} attempt(s): {exc!r}"
        )

    @staticmethod
    def _finish(call: _Call, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise error_for(response)
        return call.parse(response)


def _client_args(base_url: str | None, transport: object | None) -> tuple[str, dict[str, Any]]:
    if base_url is None and transport is None:
        raise ValueError("give base_url (a running server) or transport (in-process or fake)")
    return base_url or DEFAULT_BASE_URL, ({"transport": transport} if transport else {})


class WorldplanClient(_Base):
    """Blocking client. Use as a context manager or call :meth:`close`.

    Args:
        base_url: Server address, e.g. ``http://127.0.0.1:8000``.
        api_key: Value of the ``X-API-Key`` header (health and metrics need none).
        timeout_s: Timeout of each request (connect, read, write, pool).
        retry: Retries of connection failures.
        transport: An ``httpx.BaseTransport`` to use instead of the network.
        sleep: Called with the backoff in seconds between retries (tests pass a recorder).
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(api_key, timeout_s, retry)
        url, extra = _client_args(base_url, transport)
        self._http = httpx.Client(
            base_url=url, headers=self._headers, timeout=self._timeout, **extra
        )
        self._sleep = sleep

    def __enter__(self) -> WorldplanClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _send(self, call: _Call) -> Any:
        for attempt in range(1, self.retry.attempts + 1):
            try:
                response = self._http.request(call.method, call.path, **self._request_kwargs(call))
            except _RETRYABLE as exc:
                if attempt == self.retry.attempts:
                    raise self._fail(call, exc, attempt) from exc
                wait = self.retry.delay(attempt)
                log.warning(
                    "%s %s: %r; retry %d in %.2fs", call.method, call.path, exc, attempt, wait
                )
                self._sleep(wait)
            except httpx.TransportError as exc:
                raise self._fail(call, exc, attempt) from exc
            else:
                return self._finish(call, response)
        raise AssertionError("unreachable")  # pragma: no cover

    def plan(
        self,
        observation: ImageInput,
        goal: ImageInput,
        options: PlanOptions,
        *,
        upload: Upload = "json",
        image_format: ImageFormat = "png",
    ) -> PlanResponse:
        """``POST /v1/plan``: actions taking ``observation`` to ``goal``.

        Args:
            observation: uint8 (H, W, 3) RGB array, or PNG/JPEG/``.npy`` bytes.
            goal: Same, for the goal.
            options: Model, planner, budget, proprio, warm start, guardrails.
            upload: ``"json"`` (base64 images) or ``"multipart"`` (image files).
            image_format: How arrays are encoded: ``"png"`` or ``"npy"`` (raw uint8).
        """
        result: PlanResponse = self._send(
            _plan_call(observation, goal, options, upload, image_format)
        )
        return result

    def get_plan(self, plan_id: str) -> PlanRecord:
        """``GET /v1/plans/{id}``: a stored plan with its trace."""
        result: PlanRecord = self._send(
            _Call("GET", f"/v1/plans/{_quote(plan_id)}", _model(PlanRecord))
        )
        return result

    def preview(self, plan_id: str, fmt: PreviewFormat = "png") -> bytes:
        """``GET /v1/plans/{id}/preview``: the operator preview as HTML, PNG or GIF bytes."""
        result: bytes = self._send(_preview_call(plan_id, fmt))
        return result

    def models(self) -> list[ModelInfo]:
        """``GET /v1/models``: the loaded model bundles."""
        result: list[ModelInfo] = self._send(_Call("GET", "/v1/models", _models))
        return result

    def health(self) -> Health:
        """``GET /v1/health``: liveness, encoder provenance, models, device."""
        result: Health = self._send(_Call("GET", "/v1/health", _model(Health)))
        return result

    def metrics(self) -> str:
        """``GET /metrics``: Prometheus text."""
        result: str = self._send(_Call("GET", "/metrics", _text))
        return result


class AsyncWorldplanClient(_Base):
    """Asynchronous client with the same methods as :class:`WorldplanClient`.

    Args:
        base_url: Server address.
        api_key: Value of the ``X-API-Key`` header.
        timeout_s: Timeout of each request.
        retry: Retries of connection failures.
        transport: An ``httpx.AsyncBaseTransport`` to use instead of the network.
        sleep: Awaited with the backoff in seconds between retries.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        super().__init__(api_key, timeout_s, retry)
        url, extra = _client_args(base_url, transport)
        self._http = httpx.AsyncClient(
            base_url=url, headers=self._headers, timeout=self._timeout, **extra
        )
        self._sleep = sleep

    async def __aenter__(self) -> AsyncWorldplanClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _send(self, call: _Call) -> Any:
        for attempt in range(1, self.retry.attempts + 1):
            try:
                response = await self._http.request(
                    call.method, call.path, **self._request_kwargs(call)
                )
            except _RETRYABLE as exc:
                if attempt == self.retry.attempts:
                    raise self._fail(call, exc, attempt) from exc
                wait = self.retry.delay(attempt)
                log.warning(
                    "%s %s: %r; retry %d in %.2fs", call.method, call.path, exc, attempt, wait
                )
                await self._sleep(wait)
            except httpx.TransportError as exc:
                raise self._fail(call, exc, attempt) from exc
            else:
                return self._finish(call, response)
        raise AssertionError("unreachable")  # pragma: no cover

    async def plan(
        self,
        observation: ImageInput,
        goal: ImageInput,
        options: PlanOptions,
        *,
        upload: Upload = "json",
        image_format: ImageFormat = "png",
    ) -> PlanResponse:
        """``POST /v1/plan`` (see :meth:`WorldplanClient.plan`)."""
        result: PlanResponse = await self._send(
            _plan_call(observation, goal, options, upload, image_format)
        )
        return result

    async def get_plan(self, plan_id: str) -> PlanRecord:
        """``GET /v1/plans/{id}``."""
        call = _Call("GET", f"/v1/plans/{_quote(plan_id)}", _model(PlanRecord))
        result: PlanRecord = await self._send(call)
        return result

    async def preview(self, plan_id: str, fmt: PreviewFormat = "png") -> bytes:
        """``GET /v1/plans/{id}/preview``."""
        result: bytes = await self._send(_preview_call(plan_id, fmt))
        return result

    async def models(self) -> list[ModelInfo]:
        """``GET /v1/models``."""
        result: list[ModelInfo] = await self._send(_Call("GET", "/v1/models", _models))
        return result

    async def health(self) -> Health:
        """``GET /v1/health``."""
        result: Health = await self._send(_Call("GET", "/v1/health", _model(Health)))
        return result

    async def metrics(self) -> str:
        """``GET /metrics``."""
        result: str = await self._send(_Call("GET", "/metrics", _text))
        return result
