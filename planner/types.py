"""What goes into a planner and what comes out: requests, plans, refusals, and warm starts."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    """Warm start (K, A) in env units for the first K <= H planning steps, e.g.
    :func:`shift_plan` of the previous plan. Those steps start around it with the
    optimiser's warm spread; steps K..H-1 (all of them when K = 0 or ``init`` is
    None) start cold, at the data's mean action with the cold spread."""


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


def shift_plan(plan: Plan | Tensor, executed_steps: int) -> Tensor:
    """The warm start for the next MPC step: the previous plan's steps not yet executed.

    The steps after them are left to the planner, which starts them cold: padding
    them (with the last action, say) would centre a narrow warm search on a guess.

    Args:
        plan: A plan or its (H, A) actions.
        executed_steps: Planning steps executed since the plan was made (>= 0).

    Returns:
        (H - k, A) actions in env units, k = min(executed_steps, H): empty once the
        whole plan has been executed.
    """
    actions = plan.actions if isinstance(plan, Plan) else plan
    if actions.ndim != 2:
        raise ValueError(f"plan actions must be (H, A), got {tuple(actions.shape)}")
    if isinstance(executed_steps, bool) or not isinstance(executed_steps, int):
        raise ValueError(f"executed_steps must be an int, got {executed_steps!r}")
    if executed_steps < 0:
        raise ValueError(f"executed_steps must be >= 0, got {executed_steps}")
    return actions[min(executed_steps, actions.shape[0]) :].clone()
