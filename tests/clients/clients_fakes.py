"""A fake planning service behind ``httpx.MockTransport``, following the API contract.

It checks the API key, decodes the images (base64 PNG/.npy in JSON, or multipart
files) and their size, records every request, and plans with an oracle: a maze
with the request's proprio as its state, driven to the goal proprio by the
scripted maze policy (goal_prob 1, no noise) for horizon x frameskip steps.
"""

from __future__ import annotations

import base64
import io
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import httpx
import numpy as np
from numpy.typing import NDArray
from PIL import Image

import sims  # noqa: F401
from sims.maze import MazeEnv
from sims.policies.maze import ScriptedPolicy

KEY = "secret-key"


def decode(data: bytes) -> NDArray[np.uint8]:
    if data.startswith(b"\x93NUMPY"):
        arr: NDArray[np.uint8] = np.load(io.BytesIO(data), allow_pickle=False)
        return arr
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


@dataclass
class Seen:
    """One request as the fake understood it."""

    method: str
    path: str
    headers: dict[str, str]
    kind: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    observation: NDArray[np.uint8] | None = None
    goal: NDArray[np.uint8] | None = None


def maze_model(layout: str = "tworoom", image_size: int = 32) -> dict[str, Any]:
    return {
        "name": f"maze-{layout}",
        "env_id": "worldplan/Maze-v0",
        "env_kwargs": {"layout": layout},
        "image_size": image_size,
        "env_action_dim": 2,
        "frameskip": 5,
        "history": 1,
        "proprio_dim": 4,
        "encoder_id": "fake",
        "state_labels": ["agent_x", "agent_y"],
        "metrics": {},
    }


class FakeService:
    """The handler of a MockTransport; ``oracle=False`` answers zero actions."""

    def __init__(self, models: list[dict[str, Any]] | None = None, horizon: int = 5) -> None:
        self.models = models or [maze_model()]
        self.horizon = horizon
        self.seen: list[Seen] = []
        self.tokens: dict[str, dict[str, Any]] = {}

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        seen = Seen(request.method, request.url.path, dict(request.headers))
        self.seen.append(seen)
        if request.url.path == "/v1/health":
            return httpx.Response(200, json=self._health())
        if request.headers.get("x-api-key") != KEY:
            return httpx.Response(401, json={"detail": "invalid API key"})
        if request.url.path == "/v1/models":
            return httpx.Response(200, json=self.models)
        if request.url.path == "/metrics":
            return httpx.Response(200, text="worldplan_requests_total 1\n")
        if request.url.path == "/v1/plan" and request.method == "POST":
            return self._plan(request, seen)
        return httpx.Response(404, json={"detail": f"no route {request.url.path}"})

    def _health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "version": "0",
            "device": "cpu",
            "encoders": [],
            "models": [m["name"] for m in self.models],
        }

    def _read(self, request: httpx.Request, seen: Seen) -> None:
        ctype = request.headers["content-type"]
        if ctype.startswith("multipart/form-data"):
            seen.kind = "multipart"
            files, fields = _multipart(request)
            seen.options = json.loads(fields["options"])
            seen.observation, seen.goal = decode(files["observation"]), decode(files["goal"])
        else:
            seen.kind = "json"
            body = json.loads(request.content)
            seen.observation = decode(base64.b64decode(body.pop("observation")))
            seen.goal = decode(base64.b64decode(body.pop("goal")))
            seen.options = body

    def _plan(self, request: httpx.Request, seen: Seen) -> httpx.Response:
        self._read(request, seen)
        opts = seen.options
        model = next((m for m in self.models if m["name"] == opts["model"]), None)
        if model is None:
            return httpx.Response(404, json={"detail": f"unknown model {opts['model']!r}"})
        size = model["image_size"]
        for img in (seen.observation, seen.goal):
            assert img is not None
            if img.shape != (size, size, 3):
                return httpx.Response(422, json={"detail": f"image is {img.shape}, want {size}"})
        warm = opts.get("warm_start")
        if warm is not None and warm["token"] not in self.tokens:
            return httpx.Response(404, json={"detail": "warm_start.token is unknown"})
        actions = self.actions(model, opts)
        plan_id = uuid.uuid4().hex
        self.tokens[plan_id] = opts
        return httpx.Response(200, json=plan_body(plan_id, model, actions, warm is not None))

    def actions(self, model: dict[str, Any], opts: dict[str, Any]) -> NDArray[np.float32]:
        steps = (opts.get("horizon") or self.horizon) * model["frameskip"]
        layout = model["env_kwargs"]["layout"]
        env = gym.make("worldplan/Maze-v0", layout=layout, image_size=16, render_pixels=False)
        inner = env.unwrapped
        assert isinstance(inner, MazeEnv)
        reset: dict[str, Any] = {"state": opts["proprio"], "goal_state": opts["goal_proprio"]}
        if layout == "tworoom":
            reset["door_y"] = opts["door_y"]
        obs, info = inner.reset(seed=0, options=reset)
        policy = ScriptedPolicy(inner, goal_prob=1.0, noise_std=0.0)
        policy.reset(0)
        out = []
        for _ in range(steps):
            a = policy(obs, info)
            out.append(a)
            obs, _, _, _, info = inner.step(a)
        return np.asarray(out, dtype=np.float32)


def plan_body(
    plan_id: str, model: dict[str, Any], actions: NDArray[np.float32], warm: bool
) -> dict[str, Any]:
    return {
        "plan_id": plan_id,
        "model": model["name"],
        "env_id": model["env_id"],
        "planner": "cem",
        "actions": actions.tolist(),
        "frameskip": model["frameskip"],
        "cost": 0.5,
        "objective": 0.5,
        "iterations": 3,
        "stopped_because": "iterations",
        "warm_started": warm,
        "guardrails_active": ["action_box"],
        "timing": {"queue_ms": 0.1, "encode_ms": 1.0, "plan_ms": 7.0, "total_ms": 9.0},
        "warm_start_token": plan_id,
        "preview_url": f"/v1/plans/{plan_id}/preview",
    }


def _multipart(request: httpx.Request) -> tuple[dict[str, bytes], dict[str, str]]:
    """Split a multipart body into files and text fields (enough for httpx's encoding)."""
    boundary = request.headers["content-type"].split("boundary=")[1].encode()
    files: dict[str, bytes] = {}
    fields: dict[str, str] = {}
    for part in request.content.split(b"--" + boundary)[1:-1]:
        head, _, body = part.partition(b"\r\n\r\n")
        body = body[: -len(b"\r\n")]
        disposition = head.decode()
        name = disposition.split('name="')[1].split('"')[0]
        if 'filename="' in disposition:
            files[name] = body
        else:
            fields[name] = body.decode()
    return files, fields
