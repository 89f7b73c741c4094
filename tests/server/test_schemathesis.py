"""Schemathesis over the OpenAPI spec of the app (tiny model, API key given): no 5xx.

A quarter of the generated JSON plan bodies get a valid model name and valid images, so
the fuzzed options (planner, horizon, budget, guardrails, warm start, proprio) reach
the planner instead of stopping at image decoding.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from server_fixtures import KEY, MODEL, make_registry, png_b64

from server.app import create_app
from server.settings import Settings

app = create_app(
    Settings(
        api_keys=[KEY],  # type: ignore[list-item]
        max_request_bytes=1_000_000,
        plan_store_size=8,
        max_budget_iterations=3,
        max_budget_ms=200.0,
    ),
    registry=make_registry(),
)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)
IMAGES = {"observation": png_b64(1), "goal": png_b64(2)}


def _reach_the_planner(case: schemathesis.Case) -> None:
    """Give a quarter of the JSON plan bodies a loaded model, images, 2-D proprio, a tiny budget."""
    body = case.body
    json_body = case.path == "/v1/plan" and case.media_type == "application/json"
    if json_body and isinstance(body, dict) and len(repr(body)) % 4 == 0:
        body = {**body, "model": MODEL, **IMAGES}
        for key in ("proprio", "goal_proprio"):
            if isinstance(body.get(key), list) and len(body[key]) != 2:
                del body[key]
        budget = body.get("budget")
        body["budget"] = {**(budget if isinstance(budget, dict) else {}), "iterations": 1}
        body["horizon"] = 2
        case.body = body


@schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_errors(case: schemathesis.Case) -> None:
    _reach_the_planner(case)
    case.call_and_validate(headers={"X-API-Key": KEY}, checks=[not_a_server_error], timeout=120)
