"""A batch of planning requests stacked for one model call per iteration.

Shapes: R requests, S samples per request, H horizon, A planning-action dim,
T0 history frames, N tokens, D feature dim, P proprio dim, Ds probed state dim.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from planner.config import ObjectiveConfig
from planner.constraints import GuardrailTensors, clamp_actions, state_penalty
from planner.objective import latent_cost
from planner.types import PlanRequest
from world_model.types import Latent, LatentModel


@dataclass(frozen=True)
class Evaluation:
    """Costs of sampled action sequences."""

    cost: Tensor  # (R', S) objective + guardrail penalty; NaN becomes +inf
    objective: Tensor  # (R', S)
    states: Tensor  # (R', S, H, Ds) probed states


class Problem:
    """The stacked requests, their guardrail tensors and their random generators."""

    def __init__(
        self,
        model: LatentModel,
        requests: Sequence[PlanRequest],
        objective: ObjectiveConfig,
        horizon: int,
    ) -> None:
        _validate(model, requests, horizon)
        self.model = model
        self.objective = objective
        self.horizon = horizon
        self.size = len(requests)
        visual = torch.cat([r.z_obs.visual for r in requests])  # (R, T0, N, D)
        self.z_obs = Latent(visual, torch.cat([r.z_obs.proprio for r in requests]))
        self.z_goal = Latent(
            torch.cat([r.z_goal.visual[:, -1:] for r in requests]),  # (R, 1, N, D)
            torch.cat([r.z_goal.proprio[:, -1:] for r in requests]),  # (R, 1, P)
        )
        like = visual
        self.device = visual.device
        self.mean = model.action_mean.to(like)  # (A,)
        self.std = model.action_std.to(like)  # (A,)
        self.rails = GuardrailTensors.stack(
            [r.guardrails for r in requests], model.state_labels, model.frameskip, like
        )
        self.generators = [_generator(r.seed, self.device) for r in requests]
        self.warm = torch.tensor([r.init is not None for r in requests], device=self.device)
        self.init = torch.stack(
            [
                r.init.to(like) if r.init is not None else self.mean.expand(horizon, -1)
                for r in requests
            ]
        )  # (R, H, A) env units

    def normalise(self, actions: Tensor) -> Tensor:
        """Env units -> normalised action space (z-scored with the model's statistics)."""
        return (actions - self.mean) / self.std

    def denormalise(self, x: Tensor) -> Tensor:
        """Normalised action space -> env units."""
        return x * self.std + self.mean

    def clamp(self, actions: Tensor, rows: Tensor) -> Tensor:
        """Clamp env-unit actions (R', S, H, A) of requests ``rows`` onto their guardrails."""
        return clamp_actions(actions, self.rails.select(rows))

    def randn(self, rows: Tensor, shape: tuple[int, ...]) -> Tensor:
        """Standard normal noise (R', *shape), each row from its own request's generator."""
        return torch.stack(
            [
                torch.randn(
                    shape, generator=self.generators[r], device=self.device, dtype=self.mean.dtype
                )
                for r in rows.tolist()
            ]
        )

    def evaluate(self, actions: Tensor, rows: Tensor) -> Evaluation:
        """Roll out, probe and score actions (R', S, H, A) of requests ``rows`` (R',)."""
        r, s = actions.shape[:2]
        start = Latent(_tile(self.z_obs.visual[rows], s), _tile(self.z_obs.proprio[rows], s))
        pred = self.model.rollout(start, actions.reshape(r * s, *actions.shape[2:]))
        target = Latent(_tile(self.z_goal.visual[rows], s), _tile(self.z_goal.proprio[rows], s))
        objective = latent_cost(self.objective, pred, target).reshape(r, s)  # (R', S)
        states = self.model.probe(pred)  # (R'*S, H, Ds)
        states = states.reshape(r, s, *states.shape[1:])  # (R', S, H, Ds)
        cost = objective + state_penalty(states, self.rails.select(rows))
        cost = torch.where(torch.isnan(cost), torch.full_like(cost, torch.inf), cost)
        return Evaluation(cost=cost, objective=objective, states=states)


def _tile(x: Tensor, samples: int) -> Tensor:
    """(R', ...) -> (R' * S, ...), each row repeated S times; a view when R' is 1."""
    if x.shape[0] == 1:
        return x.expand(samples, *x.shape[1:])
    return x.repeat_interleave(samples, dim=0)


def _generator(seed: int, device: torch.device) -> torch.Generator:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def _validate(model: LatentModel, requests: Sequence[PlanRequest], horizon: int) -> None:
    if not requests:
        raise ValueError("need at least one plan request")
    if isinstance(model, torch.nn.Module) and model.training:
        raise ValueError(
            "model is in training mode (dropout would make plans random): call model.eval() first"
        )
    first = requests[0]
    for i, req in enumerate(requests):
        g = req.guardrails
        if g.env_id != model.env_id:
            raise ValueError(f"request {i}: guardrails are for {g.env_id}, model is {model.env_id}")
        if g.env_action_dim != model.env_action_dim:
            raise ValueError(
                f"request {i}: guardrails have {g.env_action_dim}-D env actions, model "
                f"{model.env_action_dim}-D"
            )
        for name in ("z_obs", "z_goal"):
            z, z_first = getattr(req, name), getattr(first, name)
            if z.visual.shape[0] != 1:
                raise ValueError(f"request {i}: {name} must have batch 1, got {z.visual.shape[0]}")
            if z.visual.shape[1:] != z_first.visual.shape[1:] and name == "z_obs":
                raise ValueError(f"request {i}: {name} shape differs from request 0's")
        if req.init is not None:
            want = (horizon, model.action_dim)
            if tuple(req.init.shape) != want or not torch.isfinite(req.init).all():
                raise ValueError(
                    f"request {i}: init must be finite with shape {want}, got "
                    f"{tuple(req.init.shape)}"
                )
