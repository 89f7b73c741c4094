"""What goes into a planner and what comes out: requests, plans, refusals, and warm starts."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from planner.check import Violation
from planner.config import Budget
from planner.guardrails import Guardrails
from world_model.types import Latent


@dataclass(frozen=True)
class PlanRequest:
    """One independent planning problem; a batch of them shares one model call per iteration."""

    z_obs: Latent
    """Current observation (1, T0, N, D) / (1, T0, P): the model's history frames."""
    z_goal: Latent
    """Goal (1, Tg, ...); its last frame is the target."""
    guardrails: Guardrails
    """Hard guardrails of the env, possibly tightened by the request."""
    budget: Budget = field(default_factory=Budget)
    """Iteration, time and convergence limits."""
    seed: int = 0
    """Seed of this request's own random generator."""
    init: Tensor | None = None
    """Warm start (H, A) in env units, e.g. :func:`shift_plan` of the previous plan."""


@dataclass(frozen=True)
class Plan:
    """A plan that passed the final guardrail check."""

    actions: Tensor
    """(H, A) planning actions in env units; row h is ``frameskip`` env actions in a row."""
    cost: float
    """Total cost of ``actions``: objective plus guardrail penalty."""
    objective: float
    """The task part of ``cost`` (latent distance to the goal)."""
    states: Tensor
    """(H, D) probed physical states of the imagined rollout, named by the model's state labels."""
    trace: tuple[float, ...]
    """Lowest cost evaluated in each iteration."""
    trace_ms: tuple[float, ...]
    """Elapsed wall time (ms) after each iteration."""
    iterations: int
    """Iterations run."""
    stopped_because: str
    """``max_iterations``, ``max_ms`` or ``converged``."""
    elapsed_ms: float
    """Wall time until the optimiser stopped (ms)."""
    optimiser: str
    """``cem``, ``mppi`` or ``gradient``."""
    warm_started: bool
    """Whether the request carried an ``init``."""


@dataclass(frozen=True)
class Refusal:
    """The best plan found broke a hard bound, so no actions are returned."""

    violations: tuple[Violation, ...]
    """Every broken bound with its amount."""
    cost: float
    """Cost of the refused plan."""
    iterations: int
    """Iterations run."""
    stopped_because: str
    """Why the optimiser stopped."""
    optimiser: str
    """``cem``, ``mppi`` or ``gradient``."""

    @property
    def reason(self) -> str:
        """One line per violation."""
        return "; ".join(str(v) for v in self.violations)


class PlanRefused(RuntimeError):  # noqa: N818 - a refusal, not a programming error
    """Raised by :func:`planner.plan` when the best plan breaks a hard bound."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(f"plan refused: {refusal.reason}")
        self.refusal = refusal


def shift_plan(
    plan: Plan | Tensor,
    executed_steps: int,
    fill: Tensor | None = None,
    horizon: int | None = None,
) -> Tensor:
    """The warm start for the next MPC step: drop the executed rows, pad at the end.

    Args:
        plan: A plan or its (H, A) actions.
        executed_steps: Planning steps executed since the plan was made (>= 0).
        fill: (A,) row appended for each dropped one; by default the plan's last row.
        horizon: Rows of the warm start (the next plan's horizon); None keeps H. The
            unexecuted rows are cut at ``horizon`` or padded with ``fill`` up to it.

    Returns:
        (horizon, A) actions in env units.
    """
    actions = plan.actions if isinstance(plan, Plan) else plan
    if actions.ndim != 2:
        raise ValueError(f"plan actions must be (H, A), got {tuple(actions.shape)}")
    if isinstance(executed_steps, bool) or not isinstance(executed_steps, int):
        raise ValueError(f"executed_steps must be an int, got {executed_steps!r}")
    if executed_steps < 0:
        raise ValueError(f"executed_steps must be >= 0, got {executed_steps}")
    if horizon is None:
        horizon = actions.shape[0]
    elif isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"horizon must be an int >= 1, got {horizon!r}")
    pad = actions[-1] if fill is None else fill.to(actions)
    if pad.shape != actions.shape[1:]:
        raise ValueError(f"fill must be ({actions.shape[1]},), got {tuple(pad.shape)}")
    kept = actions[min(executed_steps, actions.shape[0]) :][:horizon]  # (<= horizon, A)
    tail = pad.expand(horizon - kept.shape[0], -1)  # (horizon - kept, A)
    return torch.cat([kept, tail], dim=0).clone()
