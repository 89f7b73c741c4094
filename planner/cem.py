"""The cross-entropy method over action sequences, batched over requests.

Shapes: R requests (R' active), S samples, K elites, H horizon, A planning-action dim.
"""

from __future__ import annotations

import torch
from torch import Tensor

from planner.config import CEMConfig
from planner.problem import Problem


class GaussianSearch:
    """A diagonal Gaussian per request in normalised action space, shared by CEM and MPPI.

    A cold start is N(0, init_std) (the data's mean action); a warm start is
    centred on the request's ``init`` with ``warm_init_std``.
    """

    def __init__(self, problem: Problem, init_std: float, warm_init_std: float) -> None:
        self.problem = problem
        warm = problem.warm[:, None, None]  # (R, 1, 1)
        self.mean = problem.normalise(problem.init)  # (R, H, A)
        self.std = torch.where(
            warm,
            torch.full_like(self.mean, warm_init_std),
            torch.full_like(self.mean, init_std),
        )  # (R, H, A)

    def sample(self, rows: Tensor, samples: int) -> Tensor:
        """Clamped env-unit samples (R', S, H, A) around the current means, sample 0 = the mean."""
        p = self.problem
        eps = p.randn(rows, (samples, *self.mean.shape[1:]))  # (R', S, H, A)
        eps[:, 0] = 0.0
        x = self.mean[rows, None] + self.std[rows, None] * eps  # (R', S, H, A)
        return p.clamp(p.denormalise(x), rows)

    def candidate(self) -> Tensor:
        """The optimiser's answer for every request: the clamped mean (R, H, A) in env units."""
        rows = torch.arange(self.problem.size, device=self.mean.device)
        return self.problem.clamp(self.problem.denormalise(self.mean)[:, None], rows)[:, 0]


class CEM(GaussianSearch):
    """The cross-entropy method: refit mean and std to the elites each iteration.

    Sample 0 of every iteration is the current mean, so the mean is always scored.
    The answer is the elite mean (as DINO-WM returns it).
    """

    name = "cem"

    def __init__(self, config: CEMConfig, problem: Problem) -> None:
        super().__init__(problem, config.init_std, config.warm_init_std)
        self.config = config

    @torch.no_grad()
    def step(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        """One iteration for requests ``rows``: the actions (R', S, H, A) and costs (R', S)."""
        actions = self.sample(rows, self.config.samples)
        cost = self.problem.evaluate(actions, rows).cost  # (R', S)
        idx = torch.topk(cost, self.config.elites, dim=1, largest=False).indices  # (R', K)
        x = self.problem.normalise(actions)  # (R', S, H, A)
        elites = torch.gather(x, 1, idx[:, :, None, None].expand(-1, -1, *x.shape[2:]))
        self.mean[rows] = elites.mean(dim=1)
        self.std[rows] = elites.std(dim=1, unbiased=False).clamp_min(self.config.min_std)
        return actions, cost
