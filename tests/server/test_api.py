from __future__ import annotations

import base64
import io
import json
import math

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from server_fixtures import KEY, MODEL, make_registry, plan_body, png_b64

from server import planning
from server.app import create_app
from server.planning import optimiser_config
from server.settings import Settings


def test_health_needs_no_key_and_names_the_encoder(client: TestClient) -> None:
    r = client.get("/v1/health", headers={"X-API-Key": ""})
    assert r.status_code == 200
    body = r.json()
    assert body["models"] == [MODEL]
    (enc,) = body["encoders"]
    assert enc["encoder_id"] == "tiny_test_encoder"
    assert len(enc["weights_sha256"]) == 64


def test_models_need_a_valid_key(client: TestClient) -> None:
    assert client.get("/v1/models", headers={"X-API-Key": "wrong"}).status_code == 401
    r = client.get("/v1/models")
    assert r.status_code == 200
    (info,) = r.json()
    assert info["name"] == MODEL
    assert info["frameskip"] == 2


def test_plan_json_returns_bounded_actions_and_timings(client: TestClient) -> None:
    r = client.post("/v1/plan", json=plan_body())
    assert r.status_code == 200, r.text
    body = r.json()
    actions = np.asarray(body["actions"])
    assert actions.shape == (3 * 2, 2)  # horizon x frameskip rows of env actions
    assert np.all(np.abs(actions) <= 1.0 + 1e-6)
    assert np.all(np.linalg.norm(actions, axis=1) <= 1.0 + 1e-6)
    assert body["iterations"] == 3
    timing = body["timing"]
    assert timing["total_ms"] >= timing["plan_ms"] > 0
    assert body["warm_start_token"] == body["plan_id"]
    assert any("workspace" in g for g in body["guardrails_active"])


def test_same_seed_same_plan(client: TestClient) -> None:
    a = client.post("/v1/plan", json=plan_body(seed=5)).json()["actions"]
    b = client.post("/v1/plan", json=plan_body(seed=5)).json()["actions"]
    c = client.post("/v1/plan", json=plan_body(seed=6)).json()["actions"]
    assert a == b
    assert a != c


def test_plan_multipart_and_npy(client: TestClient) -> None:
    obs = base64.b64decode(png_b64(1))
    buf = io.BytesIO()
    np.save(buf, np.zeros((32, 32, 3), np.uint8))
    options = {k: v for k, v in plan_body().items() if k not in ("observation", "goal")}
    r = client.post(
        "/v1/plan",
        files={"observation": ("o.png", obs, "image/png"), "goal": ("g.npy", buf.getvalue())},
        data={"options": json.dumps(options)},
    )
    assert r.status_code == 200, r.text


def test_stored_plan_trace_and_previews(client: TestClient) -> None:
    plan = client.post("/v1/plan", json=plan_body()).json()
    r = client.get(f"/v1/plans/{plan['plan_id']}")
    assert r.status_code == 200
    rec = r.json()
    assert len(rec["trace"]) == rec["iterations"] == 3
    assert set(rec["predicted_states"]) == {"agent_x", "agent_y", "block_x"}
    png = client.get(f"{plan['preview_url']}?format=png")
    assert png.headers["content-type"] == "image/png"
    sheet = np.asarray(Image.open(io.BytesIO(png.content)))
    assert sheet.ndim == 3
    assert sheet.shape[0] > 100
    gif = client.get(f"{plan['preview_url']}?format=gif")
    assert gif.headers["content-type"] == "image/gif"
    assert Image.open(io.BytesIO(gif.content)).n_frames == 3 + 2  # obs, 3 imagined, goal
    page = client.get(plan["preview_url"], headers={"X-API-Key": ""}, params={"api_key": KEY})
    assert page.status_code == 200
    assert "data:image/png;base64," in page.text
    assert client.get(plan["preview_url"], headers={"X-API-Key": ""}).status_code == 401


def test_warm_start_token(client: TestClient) -> None:
    first = client.post("/v1/plan", json=plan_body()).json()
    warm = {"token": first["warm_start_token"], "executed_steps": 1}
    r = client.post("/v1/plan", json=plan_body(warm_start=warm))
    assert r.status_code == 200, r.text
    assert r.json()["warm_started"] is True
    gone = client.post("/v1/plan", json=plan_body(warm_start={"token": "nope"}))
    assert gone.status_code == 404
    # A replan may look further (or less far) ahead than the plan it is warm-started from.
    longer = client.post("/v1/plan", json=plan_body(horizon=4, warm_start=warm))
    assert longer.status_code == 200, longer.text
    assert longer.json()["warm_started"] is True
    assert len(longer.json()["actions"]) == 4 * 2  # horizon x frameskip


@pytest.mark.parametrize(
    ("rails", "field"),
    [
        ({"max_step": 2.0}, "max_step"),
        ({"action_high": [2.0, 1.0]}, "action_high"),
        ({"workspace": {"x_min": -10, "y_min": 0, "x_max": 512, "y_max": 512}}, "workspace"),
    ],
)
def test_guardrail_loosening_is_refused_and_counted(
    client: TestClient, rails: dict[str, object], field: str
) -> None:
    r = client.post("/v1/plan", json=plan_body(guardrails=rails))
    assert r.status_code == 422
    assert field in r.json()["detail"]
    assert "loosen" in r.json()["detail"]
    metrics = client.get("/metrics").text
    assert 'worldplan_guardrail_refusals_total{reason="loosening"} 1.0' in metrics


def test_tightened_guardrails_hold_on_every_returned_plan(client: TestClient) -> None:
    rng = np.random.default_rng(0)
    for i in range(6):
        step = float(rng.uniform(0.05, 0.9))
        hi = [float(rng.uniform(0.1, 1.0)), float(rng.uniform(0.1, 1.0))]
        rails = {"max_step": step, "action_high": hi}
        r = client.post("/v1/plan", json=plan_body(seed=i, guardrails=rails))
        assert r.status_code == 200, r.text
        actions = np.asarray(r.json()["actions"])
        assert np.all(np.linalg.norm(actions, axis=1) <= step + 1e-5)
        assert np.all(actions <= np.asarray(hi) + 1e-6)
        assert np.all(actions >= -1.0 - 1e-6)


@pytest.mark.parametrize(
    ("override", "status", "needle"),
    [
        ({"model": "nope"}, 404, "unknown model"),
        ({"observation": png_b64(1, size=20)}, 422, "takes 32x32"),
        ({"observation": "!!!"}, 422, "base64"),
        ({"proprio": [1.0]}, 422, "2 values"),
        ({"budget": {"iterations": 10_000}}, 422, "iterations"),
        ({"planner": "magic"}, 422, "planner"),
        ({"horizon": 0}, 422, "horizon"),
        ({"extra_field": 1}, 422, "extra"),
    ],
)
def test_bad_requests_get_precise_4xx(
    client: TestClient, override: dict[str, object], status: int, needle: str
) -> None:
    r = client.post("/v1/plan", json=plan_body(**override))
    assert r.status_code == status, r.text
    assert needle in r.json()["detail"]


def test_nan_proprio_is_refused(client: TestClient) -> None:
    text = json.dumps(plan_body(proprio=[1.0, math.nan]))
    assert "NaN" in text
    r = client.post("/v1/plan", content=text, headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert "proprio" in r.json()["detail"]


def test_pickled_npy_is_refused(client: TestClient) -> None:
    buf = io.BytesIO()
    np.save(buf, np.array([object()], dtype=object), allow_pickle=True)
    r = client.post("/v1/plan", json=plan_body(goal=base64.b64encode(buf.getvalue()).decode()))
    assert r.status_code == 422
    assert "pickle" in r.json()["detail"]


def test_too_large_and_wrong_content_type(client: TestClient) -> None:
    big = {"model": MODEL, "observation": "A" * 1_100_000, "goal": "A"}
    assert client.post("/v1/plan", json=big).status_code == 413
    r = client.post("/v1/plan", content=b"x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415


def test_unknown_plan_and_store_bound(client: TestClient) -> None:
    assert client.get("/v1/plans/unknown").status_code == 404
    ids = [client.post("/v1/plan", json=plan_body(seed=i)).json()["plan_id"] for i in range(10)]
    assert client.get(f"/v1/plans/{ids[0]}").status_code == 404  # evicted (store holds 8)
    assert client.get(f"/v1/plans/{ids[-1]}").status_code == 200


def test_metrics_count_requests_and_stages(client: TestClient) -> None:
    client.post("/v1/plan", json=plan_body())
    text = client.get("/metrics").text
    assert 'worldplan_requests_total{route="/v1/plan",status="200"} 1.0' in text
    assert 'worldplan_stage_seconds_count{stage="plan"} 1.0' in text
    assert "worldplan_batch_size_count 1.0" in text


def test_server_without_keys_refuses() -> None:
    app = create_app(Settings(), registry=make_registry())
    with TestClient(app) as c:
        r = c.get("/v1/models", headers={"X-API-Key": "x"})
        assert r.status_code == 401
        assert "WORLDPLAN_API_KEYS" in r.json()["detail"]


def test_samples_option_sets_the_optimiser_width() -> None:
    cem = optimiser_config("cem", 4, 40)
    assert (cem.horizon, cem.samples, cem.elites) == (4, 40, 4)  # type: ignore[union-attr]
    grad = optimiser_config("gradient", None, 3)
    assert grad.restarts == 3  # type: ignore[union-attr]
    assert optimiser_config("mppi", None, 2).elites == 1  # type: ignore[union-attr]


def test_plan_with_few_samples(client: TestClient) -> None:
    r = client.post("/v1/plan", json=plan_body(samples=16))
    assert r.status_code == 200, r.text
    bad = client.post("/v1/plan", json=plan_body(samples=1))
    assert bad.status_code == 422
    assert "samples" in bad.json()["detail"]


def test_proprio_weight_adds_the_goal_proprio_distance_to_the_cost(client: TestClient) -> None:
    far = {"proprio": [0.0, 0.0], "goal_proprio": [50.0, -50.0]}
    plain = client.post("/v1/plan", json=plan_body(**far, proprio_weight=0.0))
    weighted = client.post("/v1/plan", json=plan_body(**far, proprio_weight=5.0))
    assert plain.status_code == 200, plain.text
    assert weighted.status_code == 200, weighted.text
    # Same seed and budget: the weighted objective carries the (large) proprio distance.
    assert weighted.json()["objective"] > plain.json()["objective"] + 1.0
    refused = client.post("/v1/plan", json=plan_body(proprio_weight=1.0))
    assert refused.status_code == 422
    assert "goal_proprio" in refused.json()["detail"]
    negative = client.post("/v1/plan", json=plan_body(**far, proprio_weight=-1.0))
    assert negative.status_code == 422
    assert "proprio_weight" in negative.json()["detail"]


def test_proprio_weight_default_applies_only_with_a_goal_proprio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(planning.DEFAULT_PROPRIO_WEIGHT, "worldplan/Maze-v0", 2.0)
    assert planning.proprio_weight("worldplan/Maze-v0", None, has_goal_proprio=True) == 2.0
    assert planning.proprio_weight("worldplan/Maze-v0", None, has_goal_proprio=False) == 0.0
    assert planning.proprio_weight("worldplan/Maze-v0", 0.5, has_goal_proprio=True) == 0.5
    assert planning.proprio_weight("worldplan/Granular-v0", None, has_goal_proprio=True) == 0.0
    with pytest.raises(ValueError, match="goal_proprio"):
        planning.proprio_weight("worldplan/Maze-v0", 0.5, has_goal_proprio=False)
    cem = optimiser_config("cem", None, None, 2.0)
    assert cem.objective.alpha == 2.0


def test_cem_noise_options_reach_the_planner_and_only_cem_takes_them(
    client: TestClient,
) -> None:
    cem = optimiser_config("cem", None, 40, noise_beta=2.5, keep_elites=0.5)
    assert (cem.noise_beta, cem.keep_elites, cem.kept) == (2.5, 0.5, 2)  # type: ignore[union-attr]
    default = optimiser_config("cem", None)
    assert default.noise_beta == planning.DEFAULT_CEM_NOISE_BETA  # type: ignore[union-attr]
    assert default.keep_elites == planning.DEFAULT_CEM_KEEP_ELITES  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="'cem' only"):
        optimiser_config("mppi", None, noise_beta=1.0)
    # The same seed plans differently with coloured noise: the option is not dropped on the way.
    white = client.post("/v1/plan", json=plan_body(samples=16, noise_beta=0.0, keep_elites=0.0))
    pink = client.post("/v1/plan", json=plan_body(samples=16, noise_beta=2.0, keep_elites=0.3))
    assert white.status_code == 200, white.text
    assert pink.status_code == 200, pink.text
    assert white.json()["actions"] != pink.json()["actions"]
    for bad in (
        {"noise_beta": 5.0},
        {"keep_elites": -0.1},
        {"planner": "gradient", "noise_beta": 1},
    ):
        r = client.post("/v1/plan", json=plan_body(**bad))
        assert r.status_code == 422, (bad, r.text)
        assert ("noise_beta" if "noise_beta" in bad else "keep_elites") in r.json()["detail"]
