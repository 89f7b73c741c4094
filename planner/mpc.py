"""Receding-horizon control: plan, execute the first steps, re-plan warm-started.

The controller only remembers the previous plan; observing, encoding and
stepping the world are the caller's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from planner.api import Clock, plan
from planner.config import Budget, OptimiserConfig
from planner.guardrails import Guardrails
from planner.types import Plan, shift_plan
from world_model.types import Latent, LatentModel


@dataclass
class RecedingHorizon:
    """An MPC loop around :func:`planner.plan` with warm starts.

    Each call to :meth:`act` plans from the current observation, seeded by the
    previous plan shifted by the ``execute_steps`` planning steps executed since
    (padded with the data's mean action), and returns the new plan; the caller
    executes its first ``execute_steps`` rows (``frameskip`` env actions each).
    DINO-WM executes the whole horizon; TD-MPC2 one step.
    """

    config: OptimiserConfig
    guardrails: Guardrails
    budget: Budget = field(default_factory=Budget)
    execute_steps: int = 1
    clock: Clock = time.perf_counter
    previous: Plan | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.execute_steps <= self.config.horizon:
            raise ValueError(
                f"execute_steps must be in [1, horizon={self.config.horizon}], "
                f"got {self.execute_steps}"
            )

    def act(self, model: LatentModel, z_obs: Latent, z_goal: Latent, seed: int) -> Plan:
        """Plan for this step (raises :class:`planner.PlanRefused` on a refusal)."""
        init = None
        if self.previous is not None and self.execute_steps < self.config.horizon:
            init = shift_plan(self.previous, self.execute_steps, fill=model.action_mean)
        result = plan(
            model,
            z_obs,
            z_goal,
            self.config,
            self.guardrails,
            budget=self.budget,
            init=init,
            seed=seed,
            clock=self.clock,
        )
        self.previous = result
        return result

    def reset(self) -> None:
        """Forget the previous plan (a new episode)."""
        self.previous = None
