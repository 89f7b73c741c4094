"""From decoded request to plan: building planner inputs and running a batch of jobs.

:func:`run_jobs` runs in the batcher's worker thread, never on the event loop:
it encodes every observation and goal of the batch in one encoder call and plans
every request in one :func:`planner.plan_batch` call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from planner import (
    Box2D,
    Budget,
    CEMConfig,
    Circle,
    GradientConfig,
    GuardrailRequest,
    Guardrails,
    MPPIConfig,
    Plan,
    PlanRequest,
    Refusal,
    plan_batch,
)
from planner.config import OptimiserConfig
from planner.waypoints import tworoom_waypoint
from server.registry import LoadedModel
from server.schemas import BudgetSpec, GuardrailTightening, OptimiserName
from world_model.types import Latent

#: Iterations when a request names no iteration budget (DINO-WM's CEM runs 30).
DEFAULT_ITERATIONS: dict[str, int] = {"cem": 30, "mppi": 30, "gradient": 100}


#: Weight of the goal-proprio distance in the cost (DINO-WM's ``alpha``) when a request
#: sends ``goal_proprio`` and names no ``proprio_weight``, per env; envs not listed: 0.
#: Chosen by closed-loop success on the shipped bundles (README, "Where it stands"): the
#: offline encoder's latent distance is flat once the maze dot or the pusher is more than
#: a few pixels from its goal, and the proprio (their position) restores a slope there.
DEFAULT_PROPRIO_WEIGHT: dict[str, float] = {"worldplan/PushT-v0": 1.0, "worldplan/Maze-v0": 1.0}


def aimed_goal_proprio(
    loaded: LoadedModel,
    proprio: NDArray[np.float32] | None,
    goal_proprio: NDArray[np.float32] | None,
    door_y: float | None,
) -> tuple[NDArray[np.float32] | None, tuple[float, float] | None]:
    """The goal proprio the cost aims at, and the waypoint if it is not the goal's.

    Two-room maze: while the wall separates ``proprio``'s position from
    ``goal_proprio``'s, the position is replaced by :func:`planner.waypoints.tworoom_waypoint`
    (velocities are kept). Other envs, or without both proprios: ``goal_proprio`` unchanged.
    """
    geometry = loaded.tworoom_geometry(door_y)
    if geometry is None or proprio is None or goal_proprio is None:
        return goal_proprio, None
    here = (float(proprio[0]), float(proprio[1]))
    goal = (float(goal_proprio[0]), float(goal_proprio[1]))
    waypoint = tworoom_waypoint(here, goal, *geometry)
    if waypoint is None:
        return goal_proprio, None
    aimed = goal_proprio.copy()
    aimed[:2] = waypoint
    return aimed, waypoint


def proprio_weight(env_id: str, requested: float | None, has_goal_proprio: bool) -> float:
    """The proprio weight of a request (raises ``ValueError`` without a goal proprio)."""
    if requested is None:
        return DEFAULT_PROPRIO_WEIGHT.get(env_id, 0.0) if has_goal_proprio else 0.0
    if requested > 0 and not has_goal_proprio:
        raise ValueError("proprio_weight > 0 needs goal_proprio: the cost compares against it")
    return requested


#: The service's CEM noise when a request names none: ``CEMConfig.noise_beta`` and
#: ``keep_elites`` (0 and 0: DINO-WM's white noise and fresh samples every iteration).
DEFAULT_CEM_NOISE_BETA = 0.0
DEFAULT_CEM_KEEP_ELITES = 0.0


def optimiser_config(
    name: OptimiserName,
    horizon: int | None,
    samples: int | None = None,
    proprio_weight: float = 0.0,
    *,
    noise_beta: float | None = None,
    keep_elites: float | None = None,
) -> OptimiserConfig:
    """The optimiser's defaults with the request's horizon, samples, proprio weight, noise.

    ``noise_beta`` and ``keep_elites`` are CEM's; None takes the service's default.

    Raises:
        ValueError: ``noise_beta`` or ``keep_elites`` for a planner other than CEM.
    """
    config: OptimiserConfig
    if name != "cem" and (noise_beta is not None or keep_elites is not None):
        raise ValueError(f"noise_beta and keep_elites apply to planner 'cem' only, not {name!r}")
    if name == "cem":
        config = CEMConfig(
            noise_beta=DEFAULT_CEM_NOISE_BETA if noise_beta is None else noise_beta,
            keep_elites=DEFAULT_CEM_KEEP_ELITES if keep_elites is None else keep_elites,
        )
    elif name == "mppi":
        config = MPPIConfig()
    else:
        config = GradientConfig()
    if proprio_weight:
        config = replace(config, objective=replace(config.objective, alpha=proprio_weight))
    if horizon is not None:
        config = replace(config, horizon=horizon)
    if samples is None:
        return config
    if isinstance(config, GradientConfig):
        return replace(config, restarts=samples)
    return config.resized(samples)


def budget_from(
    spec: BudgetSpec, name: OptimiserName, max_iterations: int, max_ms: float
) -> Budget:
    """The planner budget of a request, refusing one beyond the server's limits.

    Raises:
        ValueError: the request asks for more iterations or time than the server allows.
    """
    iterations = spec.iterations if spec.iterations is not None else DEFAULT_ITERATIONS[name]
    if iterations > max_iterations:
        raise ValueError(f"budget.iterations = {iterations} exceeds this server's {max_iterations}")
    if spec.milliseconds is not None and spec.milliseconds > max_ms:
        raise ValueError(
            f"budget.milliseconds = {spec.milliseconds} exceeds this server's {max_ms}"
        )
    return Budget(max_iterations=iterations, max_ms=spec.milliseconds, patience=spec.patience)


def tightened(hard: Guardrails, spec: GuardrailTightening | None) -> Guardrails:
    """Apply a request's tightening to the hard guardrails (raises GuardrailError on loosening)."""
    if spec is None:
        return hard
    request = GuardrailRequest(
        action_low=None if spec.action_low is None else tuple(spec.action_low),
        action_high=None if spec.action_high is None else tuple(spec.action_high),
        max_step=spec.max_step,
        workspace=None if spec.workspace is None else Box2D(**spec.workspace.model_dump()),
        keep_out_boxes=tuple(Box2D(**b.model_dump()) for b in spec.keep_out_boxes),
        keep_out_circles=tuple(Circle(**c.model_dump()) for c in spec.keep_out_circles),
    )
    return hard.tighten(request)


def describe(rails: Guardrails) -> list[str]:
    """Human-readable lines naming each active guardrail."""
    lines = [
        f"action box low={list(rails.action_low)} high={list(rails.action_high)}",
        f"max step {rails.max_step} ({rails.step_kind})",
        f"workspace {rails.workspace.as_tuple()} for {list(rails.points)}",
    ]
    lines += [f"keep-out box {b.as_tuple()}" for b in rails.keep_out_boxes]
    lines += [f"keep-out circle ({c.x}, {c.y}) r={c.radius}" for c in rails.keep_out_circles]
    return lines


@dataclass(frozen=True)
class PlanJob:
    """One decoded, validated request waiting for the batcher."""

    loaded: LoadedModel
    config: OptimiserConfig
    observation: NDArray[np.uint8]  # (H, W, 3)
    goal: NDArray[np.uint8]  # (H, W, 3)
    proprio: NDArray[np.float32] | None  # (P,)
    goal_proprio: NDArray[np.float32] | None  # (P,) what the cost aims at
    guardrails: Guardrails
    budget: Budget
    seed: int
    init: Tensor | None  # (H, A) env units
    submitted: float  # time.perf_counter() at arrival
    waypoint: tuple[float, float] | None = None  # where goal_proprio was moved, if anywhere

    @property
    def key(self) -> tuple[str, OptimiserConfig]:
        """Jobs with the same key are planned in one call."""
        return (self.loaded.name, self.config)


@dataclass(frozen=True)
class PlanOutcome:
    """What the worker thread hands back for one job."""

    result: Plan | Refusal
    z_obs: Latent  # (1, 1, ...), kept for previews
    queue_ms: float
    encode_ms: float
    plan_ms: float


def _proprio(job_value: NDArray[np.float32] | None, loaded: LoadedModel) -> Tensor:
    """Raw proprio (P,); when absent, the training mean (a neutral value)."""
    if job_value is None:
        return loaded.model.proprio_mean.detach().cpu().clone()
    return torch.from_numpy(job_value)


def _row(z: Latent, i: int) -> Latent:
    """Batch row ``i`` of ``z`` as a batch-1 latent."""
    return Latent(z.visual[i : i + 1], z.proprio[i : i + 1])


def run_jobs(jobs: list[PlanJob]) -> list[PlanOutcome]:
    """Encode and plan a batch of jobs that share one model and optimiser config."""
    start = time.perf_counter()
    loaded, config = jobs[0].loaded, jobs[0].config
    model = loaded.model
    frames = np.stack([im for j in jobs for im in (j.observation, j.goal)])  # (2R, H, W, 3)
    props = torch.stack(
        [_proprio(p, loaded) for j in jobs for p in (j.proprio, j.goal_proprio)]
    )  # (2R, P)
    with torch.no_grad():
        z = model.encode_images(torch.from_numpy(frames)[:, None], props[:, None])  # (2R, 1, ...)
    encoded = time.perf_counter()
    requests = [
        PlanRequest(
            z_obs=_row(z, 2 * i),
            z_goal=_row(z, 2 * i + 1),
            guardrails=j.guardrails,
            budget=j.budget,
            seed=j.seed,
            init=j.init,
        )
        for i, j in enumerate(jobs)
    ]
    results = plan_batch(model, requests, config)
    done = time.perf_counter()
    return [
        PlanOutcome(
            result=res,
            z_obs=req.z_obs,
            queue_ms=(start - j.submitted) * 1000.0,
            encode_ms=(encoded - start) * 1000.0,
            plan_ms=(done - encoded) * 1000.0,
        )
        for j, req, res in zip(jobs, requests, results, strict=True)
    ]
