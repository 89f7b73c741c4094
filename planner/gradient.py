"""Gradient planning: Adam on the action sequences through the differentiable rollout.

Shapes: R requests (R' active), K restarts, H horizon, A planning-action dim.
"""

from __future__ import annotations

import torch
from torch import Tensor

from planner.config import GradientConfig
from planner.constraints import squash, unsquash
from planner.problem import Problem


class Gradient:
    """K restarts per request optimised side by side; the actions stay in bounds by construction.

    Each sequence is ``squash(u)``: tanh into the guardrail box, then a radial
    projection onto the largest step. Restart 0 starts at the warm start (or the
    data's mean action), the others at N(0, init_std) in normalised space. Adam's
    moments are per element and per request, so requests never interact.
    """

    name = "gradient"

    def __init__(self, config: GradientConfig, problem: Problem) -> None:
        self.config = config
        self.problem = problem
        rows = torch.arange(problem.size, device=problem.device)
        h, a = problem.init.shape[1:]
        x = config.init_std * problem.randn(rows, (config.restarts, h, a))  # (R, K, H, A)
        x[:, 0] = problem.normalise(problem.init)
        start = problem.clamp(problem.denormalise(x), rows)  # (R, K, H, A) env units
        self.u = unsquash(start, problem.rails)  # (R, K, H, A)
        self.m = torch.zeros_like(self.u)
        self.v = torch.zeros_like(self.u)
        self.t = torch.zeros(problem.size, dtype=self.u.dtype, device=self.u.device)  # (R,)
        self.lr = torch.full(self.u.shape[:2], config.lr, dtype=self.u.dtype, device=self.u.device)
        self.lr[:, 0] = torch.where(problem.warm, config.warm_lr, config.lr)  # (R,)
        self.last = torch.full_like(self.lr, torch.inf)  # (R, K) cost at the previous step

    def step(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        """One Adam step for requests ``rows``: the actions (R', K, H, A) and costs (R', K)."""
        c = self.config
        rails = self.problem.rails.select(rows)
        with torch.enable_grad():
            u = self.u[rows].detach().requires_grad_(True)  # (R', K, H, A)
            actions = squash(u, rails)
            cost = self.problem.evaluate(actions, rows).cost  # (R', K)
            finite = torch.isfinite(cost)
            total = torch.where(finite, cost, torch.zeros_like(cost)).sum()
            (grad,) = torch.autograd.grad(total, u)
        grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
        self.t[rows] += 1
        t = self.t[rows][:, None, None, None]  # (R', 1, 1, 1)
        m = c.beta1 * self.m[rows] + (1 - c.beta1) * grad
        v = c.beta2 * self.v[rows] + (1 - c.beta2) * grad.square()
        m_hat = m / (1 - c.beta1**t)
        v_hat = v / (1 - c.beta2**t)
        self.m[rows], self.v[rows] = m, v
        lr = self._adapt(rows, cost.detach())[:, :, None, None]  # (R', K, 1, 1)
        self.u[rows] = u.detach() - lr * m_hat / (v_hat.sqrt() + c.eps)
        return actions.detach(), cost.detach()

    def _adapt(self, rows: Tensor, cost: Tensor) -> Tensor:
        """Per-restart step size: grow on progress, shrink when the cost went up (R', K)."""
        c = self.config
        worse = cost > self.last[rows]
        lr = torch.where(worse, self.lr[rows] * c.lr_decay, self.lr[rows] * c.lr_growth)
        self.lr[rows] = lr.clamp(max=c.lr)
        self.last[rows] = cost
        return self.lr[rows]

    @torch.no_grad()
    def candidate(self) -> Tensor:
        """The restart whose latest update is expected best: the lowest-cost restart, updated."""
        actions = squash(self.u, self.problem.rails)  # (R, K, H, A)
        rows = torch.arange(self.problem.size, device=self.u.device)
        cost = self.problem.evaluate(actions, rows).cost  # (R, K)
        best = cost.argmin(dim=1)  # (R,)
        return actions[rows, best]
