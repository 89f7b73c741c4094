"""MPPI in the style of TD-MPC2, batched over requests.

Shapes: R requests (R' active), S samples, K elites, H horizon, A planning-action dim.
"""

from __future__ import annotations

import torch
from torch import Tensor

from planner.cem import GaussianSearch
from planner.config import MPPIConfig
from planner.problem import Problem


class MPPI(GaussianSearch):
    """Elites weighted by ``exp(-(c - c_min) / (temperature * spread))``, no momentum.

    ``spread`` is the elites' cost range, so the temperature does not depend on
    the scale of the cost. Sample 0 of every iteration is the current mean; the
    answer is the weighted mean.
    """

    name = "mppi"

    def __init__(self, config: MPPIConfig, problem: Problem) -> None:
        super().__init__(problem, config.init_std, config.warm_init_std)
        self.config = config

    @torch.no_grad()
    def step(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        """One iteration for requests ``rows``: the actions (R', S, H, A) and costs (R', S)."""
        c = self.config
        actions = self.sample(rows, c.samples)
        cost = self.problem.evaluate(actions, rows).cost  # (R', S)
        elite_cost, idx = torch.topk(cost, c.elites, dim=1, largest=False)  # (R', K)
        x = self.problem.normalise(actions)  # (R', S, H, A)
        elites = torch.gather(x, 1, idx[:, :, None, None].expand(-1, -1, *x.shape[2:]))
        finite = torch.isfinite(elite_cost)
        low = elite_cost[:, :1]  # (R', 1)
        spread = torch.where(finite, elite_cost, low).amax(1, keepdim=True) - low  # (R', 1)
        logits = -(elite_cost - low) / (c.temperature * spread + 1e-12)  # (R', K)
        logits = torch.where(finite, logits, -torch.inf)
        logits = torch.where(finite.any(1, keepdim=True), logits, torch.zeros_like(logits))
        w = torch.softmax(logits, dim=1)[:, :, None, None]  # (R', K, 1, 1)
        mean = (w * elites).sum(1)  # (R', H, A)
        var = (w * (elites - mean[:, None]).square()).sum(1)  # (R', H, A)
        self.mean[rows] = mean
        self.std[rows] = var.sqrt().clamp(c.min_std, c.max_std)
        return actions, cost
