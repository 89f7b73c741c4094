"""The demo: one closed-loop episode through the service, with the operator preview saved.

The app is served in-process (:class:`clients.inprocess.InProcessTransport`); this
module only talks HTTP to it, as a robot would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clients.client import WorldplanClient
from clients.closed_loop import EpisodeConfig, ServiceController, run_episode
from clients.evaluate import make_env, select_model
from clients.goals import door_y, make_goal, resolve_env
from clients.inprocess import InProcessTransport
from clients.report import atomic_write, write_video
from clients.session import MPCSession
from clients.types import Budget, PlanOptions


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs: the env, its seed and length, and the CEM budget."""

    out: Path
    env: str = "pusht"
    seed: int = 100_000
    max_steps: int = 50
    samples: int = 100
    iterations: int = 10


def _write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def run_demo(app: Any, api_key: str, cfg: DemoConfig) -> list[str]:
    """Run the episode and write ``episode.gif``, ``preview.html``, ``preview.png``, ``demo.json``.

    Returns:
        Lines that say what happened and where the files are.
    """
    out, env_name, seed, max_steps = cfg.out, cfg.env, cfg.seed, cfg.max_steps
    samples, iterations = cfg.samples, cfg.iterations
    out.mkdir(parents=True, exist_ok=True)
    with (
        InProcessTransport(app) as transport,
        WorldplanClient(api_key=api_key, transport=transport, timeout_s=600) as client,
    ):
        model = select_model(client.models(), resolve_env(env_name), None)
        env = make_env(model)
        try:
            goal = make_goal(env, seed)
            options = PlanOptions(
                model=model.name, samples=samples, budget=Budget(iterations=iterations)
            )
            controller = ServiceController(
                MPCSession(client, options),
                f"cem@{iterations}",
                episode_options=lambda g: {"door_y": door_y(model.env_id, g)},
            )
            config = EpisodeConfig(max_steps=max_steps, record_frames=True)
            episode = run_episode(env, goal, controller, config)
        finally:
            env.close()
        first_plan = next((p for p in episode.plan_ids if p is not None), None)
        if first_plan is not None:
            for fmt in ("html", "png"):
                _write_bytes(out / f"preview.{fmt}", client.preview(first_plan, fmt))
    write_video(out / "episode.gif", episode.frames, goal.goal_image)
    summary = episode.to_json(with_actions=False)
    atomic_write(out / "demo.json", lambda tmp: tmp.write_text(json.dumps(summary, indent=2)))
    verdict = "reached the goal" if episode.success else "did not reach the goal"
    return [
        f"{model.name}: {verdict} in {episode.steps} env steps "
        f"({episode.metric_name} {episode.start_metric:.3f} -> {episode.final_metric:.3f}), "
        f"{sum(p is not None for p in episode.plan_ids)} plans",
        f"wrote {out / 'episode.gif'}, {out / 'preview.html'}, {out / 'preview.png'}, "
        f"{out / 'demo.json'}",
    ]
