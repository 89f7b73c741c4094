"""Dependencies of the routers: settings, the app's services, and API-key checks."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Query, Request, status

from server.batching import Batcher
from server.metrics import Metrics
from server.planning import PlanJob, PlanOutcome
from server.registry import ModelRegistry
from server.settings import Settings
from server.store import BoundedStore
from server.stored import StoredPlan


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once from the environment (tests pass their own)."""
    return Settings()


@dataclass
class Services:
    """What the app holds for its lifetime (on ``app.state.services``)."""

    settings: Settings
    registry: ModelRegistry
    batcher: Batcher[PlanJob, PlanOutcome]
    plans: BoundedStore[StoredPlan]
    metrics: Metrics


def get_services(request: Request) -> Services:
    """The app's services."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def require_api_key(
    services: ServicesDep,
    x_api_key: Annotated[str | None, Header(description="An API key of this server.")] = None,
) -> None:
    """Refuse a request without a valid ``X-API-Key`` header (401)."""
    _check_key(services.settings, x_api_key)


def require_api_key_or_query(
    services: ServicesDep,
    x_api_key: Annotated[str | None, Header(description="An API key of this server.")] = None,
    api_key: Annotated[
        str | None, Query(description="The API key, for links opened in a browser.")
    ] = None,
) -> None:
    """Like :func:`require_api_key`, also accepting ``?api_key=`` (preview links)."""
    _check_key(services.settings, x_api_key or api_key)


def _check_key(settings: Settings, given: str | None) -> None:
    if not settings.api_keys:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "this server accepts no API key yet: set WORLDPLAN_API_KEYS",
        )
    if not given:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing X-API-Key header")
    given_b = given.encode()
    if not any(
        hmac.compare_digest(given_b, k.get_secret_value().encode()) for k in settings.api_keys
    ):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid API key")


AuthDep = Depends(require_api_key)
AuthOrQueryDep = Depends(require_api_key_or_query)
