"""The two-room door waypoint: the proprio cost aims past the door while the wall is between.

Planned on the shipped two-room bundle from a start pressed against the wall, level
with a goal in the other room and far from the door: the straight-line cost's local
minimum. With the waypoint the executed plan heads for the door; without it, it stays
at the wall.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

import sims  # noqa: F401 - registers the envs
from planner.waypoints import TWOROOM_WAYPOINT_PAST_WALL, tworoom_waypoint
from server.app import create_app
from server.planning import aimed_goal_proprio
from server.registry import LoadedModel, ModelRegistry
from server.settings import Settings
from world_model.bundle import load_bundle

ENV_ID = "worldplan/Maze-v0"
BUNDLE = Path(__file__).resolve().parents[2] / "models" / "maze-tworoom"
KEY = "waypoint-test-key"
DOOR_Y, START, GOAL = 15.0, (24.0, 45.0), (44.0, 45.0)


def test_waypoint_is_past_the_door_on_the_goals_side_only_across_the_wall() -> None:
    past = TWOROOM_WAYPOINT_PAST_WALL
    assert tworoom_waypoint((24.0, 45.0), (44.0, 45.0), 32.0, 15.0) == (32.0 + past, 15.0)
    assert tworoom_waypoint((44.0, 45.0), (24.0, 5.0), 32.0, 40.0) == (32.0 - past, 40.0)
    assert tworoom_waypoint((24.0, 45.0), (10.0, 5.0), 32.0, 15.0) is None  # same room
    assert tworoom_waypoint((40.0, 45.0), (50.0, 5.0), 32.0, 15.0) is None
    # On the centre line (in the door) counts as the right-hand room.
    assert tworoom_waypoint((32.0, 15.0), (44.0, 45.0), 32.0, 15.0) is None
    assert tworoom_waypoint((32.0, 15.0), (20.0, 45.0), 32.0, 15.0) == (32.0 - past, 15.0)


def _loaded(env_id: str, **options: str) -> LoadedModel:
    spec = SimpleNamespace(env_id=env_id, env_options=options)
    return LoadedModel("m", Path(), SimpleNamespace(spec=spec), {})  # type: ignore[arg-type]


def test_aimed_goal_proprio_moves_only_the_position_and_only_in_two_room() -> None:
    here = np.array([24.0, 45.0, 0.5, -0.5], np.float32)
    goal = np.array([44.0, 45.0, 0.1, 0.2], np.float32)
    aimed, waypoint = aimed_goal_proprio(_loaded(ENV_ID, layout="tworoom"), here, goal, 20.0)
    assert waypoint == (32.0 + TWOROOM_WAYPOINT_PAST_WALL, 20.0)
    assert aimed is not None
    np.testing.assert_array_equal(aimed, np.array([*waypoint, 0.1, 0.2], np.float32))
    np.testing.assert_array_equal(goal, np.array([44.0, 45.0, 0.1, 0.2], np.float32))
    # The bundle's own wall and door when the request names no door.
    loaded = _loaded(ENV_ID, layout="tworoom", wall_x="30", door_y="40")
    assert aimed_goal_proprio(loaded, here, goal, None)[1] == (30.0 + 7.5, 40.0)
    for other in (_loaded(ENV_ID, layout="umaze"), _loaded("worldplan/PushT-v0")):
        assert aimed_goal_proprio(other, here, goal, 20.0) == (goal, None)
    assert aimed_goal_proprio(_loaded(ENV_ID, layout="tworoom"), None, goal, 20.0) == (goal, None)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    torch.set_num_threads(1)
    model = load_bundle(BUNDLE, env_id=ENV_ID)
    registry = ModelRegistry({"tworoom": LoadedModel("tworoom", BUNDLE, model, {})})
    app = create_app(Settings(api_keys=[KEY]), registry=registry)  # type: ignore[list-item]
    with TestClient(app, headers={"X-API-Key": KEY}) as c:
        yield c


def _png(pixels: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _plan_and_run(client: TestClient, door_waypoint: bool) -> tuple[dict[str, Any], np.ndarray]:
    """Plan from START toward GOAL (door at DOOR_Y), execute the plan, return the end."""
    env = gym.make(ENV_ID, layout="tworoom", image_size=64)
    options = {"layout": "tworoom", "door_y": DOOR_Y}
    goal, _ = env.reset(seed=0, options={**options, "state": list(GOAL)})
    obs, _ = env.reset(seed=0, options={**options, "state": list(START)})
    body = {
        "model": "tworoom",
        "observation": _png(obs["pixels"]),
        "goal": _png(goal["pixels"]),
        "proprio": obs["proprio"].tolist(),
        "goal_proprio": goal["proprio"].tolist(),
        "door_y": DOOR_Y,
        "door_waypoint": door_waypoint,
        "samples": 100,
        "budget": {"iterations": 10},
        "seed": 0,
    }
    r = client.post("/v1/plan", json=body)
    assert r.status_code == 200, r.text
    plan = r.json()
    for action in plan["actions"]:
        obs, *_ = env.step(np.asarray(action, np.float32))
    return plan, obs["proprio"][:2]


def test_the_waypoint_turns_a_plan_stuck_on_the_wall_toward_the_door(client: TestClient) -> None:
    aimed, end = _plan_and_run(client, door_waypoint=True)
    assert aimed["waypoint"] == [32.0 + TWOROOM_WAYPOINT_PAST_WALL, DOOR_Y]
    straight, stuck = _plan_and_run(client, door_waypoint=False)
    assert straight["waypoint"] is None
    to_door = abs(end[1] - DOOR_Y)
    assert to_door < abs(START[1] - DOOR_Y) - 15.0, end  # most of the way down the wall
    assert to_door < abs(stuck[1] - DOOR_Y) - 15.0, (end, stuck)
