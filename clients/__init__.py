"""Clients of the planning service and the closed-loop evaluation harness.

* :class:`WorldplanClient` / :class:`AsyncWorldplanClient`: one method per endpoint.
* :class:`MPCSession`: receding-horizon planning with warm starts.
* :class:`InProcessTransport`: serve an ASGI app in this process (one client argument).
* :mod:`clients.goals`, :mod:`clients.closed_loop`, :mod:`clients.evaluate`: the
  DINO-WM goal protocol, the closed-loop runner and the evaluation with baselines.

This package talks to the service over HTTP only; it never imports the server.
"""

from clients.client import AsyncWorldplanClient, RetryPolicy, WorldplanClient
from clients.errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    RequestTooLargeError,
    ResponseFormatError,
    ServerError,
    UnsupportedMediaTypeError,
    WorldplanConnectionError,
    WorldplanError,
    WorldplanTimeoutError,
)
from clients.inprocess import InProcessTransport
from clients.session import AsyncMPCSession, MPCSession
from clients.types import (
    Budget,
    Guardrails,
    Health,
    ModelInfo,
    PlanOptions,
    PlanRecord,
    PlanResponse,
    WarmStart,
)

__all__ = [
    "APIError",
    "AsyncMPCSession",
    "AsyncWorldplanClient",
    "AuthenticationError",
    "BadRequestError",
    "Budget",
    "Guardrails",
    "Health",
    "InProcessTransport",
    "MPCSession",
    "ModelInfo",
    "NotFoundError",
    "PlanOptions",
    "PlanRecord",
    "PlanResponse",
    "RequestTooLargeError",
    "ResponseFormatError",
    "RetryPolicy",
    "ServerError",
    "UnsupportedMediaTypeError",
    "WarmStart",
    "WorldplanClient",
    "WorldplanConnectionError",
    "WorldplanError",
    "WorldplanTimeoutError",
]
