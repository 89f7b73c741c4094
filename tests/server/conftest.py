"""Fixtures of the server tests: settings and a TestClient on the tiny model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from server_fixtures import KEY, make_registry

from server.app import create_app
from server.settings import Settings


@pytest.fixture
def settings() -> Settings:
    return Settings(api_keys=[KEY], max_request_bytes=1_000_000, plan_store_size=8)  # type: ignore[list-item]


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings, registry=make_registry())
    with TestClient(app, headers={"X-API-Key": KEY}) as c:
        yield c
