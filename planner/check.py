"""The last line of defence: a returned plan is checked against its guardrails in physical units."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor

from planner.guardrails import Guardrails, point_label_pairs

#: Slack for float round-off when comparing with a bound (physical units).
TOLERANCE = 1e-5


@dataclass(frozen=True)
class Violation:
    """One broken bound: which, where, and by how much (in the bound's units)."""

    bound: str
    """E.g. ``action_high[0]``, ``max_step``, ``workspace.x_max``, ``keep_out_boxes[1]``."""
    step: int
    """Planning step (row of the plan) where it happens."""
    value: float
    """The offending value (an action entry, a step length, a coordinate or a position)."""
    limit: float
    """The bound it breaks."""
    amount: float
    """How far past the bound (> 0)."""
    subject: str = "action"
    """``action``, ``action[f]`` for the f-th env action in the step, or a tracked position."""

    def __str__(self) -> str:
        return (
            f"{self.subject} at step {self.step} breaks {self.bound}: {self.value:.6g} vs "
            f"limit {self.limit:.6g} (by {self.amount:.6g})"
        )


def check_actions(rails: Guardrails, actions: Tensor, frameskip: int) -> list[Violation]:
    """Violations of the action box and the largest step by a plan (H, A) in env units."""
    a = rearrange(actions.detach().double().cpu(), "h (f e) -> h f e", f=frameskip)
    out: list[Violation] = []
    for h, f, e in torch.nonzero(a < torch.tensor(rails.action_low) - TOLERANCE).tolist():
        v, lim = float(a[h, f, e]), rails.action_low[e]
        out.append(Violation(f"action_low[{e}]", h, v, lim, lim - v, f"action[{f}]"))
    for h, f, e in torch.nonzero(a > torch.tensor(rails.action_high) + TOLERANCE).tolist():
        v, lim = float(a[h, f, e]), rails.action_high[e]
        out.append(Violation(f"action_high[{e}]", h, v, lim, v - lim, f"action[{f}]"))
    vec = a[..., 2:] - a[..., :2] if rails.step_kind == "stroke" else a
    length = vec.norm(dim=-1)  # (H, F)
    for h, f in torch.nonzero(length > rails.max_step + TOLERANCE).tolist():
        v = float(length[h, f])
        out.append(Violation("max_step", h, v, rails.max_step, v - rails.max_step, f"action[{f}]"))
    return out


def check_states(
    rails: Guardrails, states: Tensor, state_labels: tuple[str, ...]
) -> list[Violation]:
    """Violations of the workspace and keep-out zones by probed states (H, D) in env units."""
    s = states.detach().double().cpu()
    out: list[Violation] = []
    ws = rails.workspace
    for name, ix, iy in point_label_pairs(rails.points, state_labels):
        for h in range(s.shape[0]):
            x, y = float(s[h, ix]), float(s[h, iy])
            for bound, v, lim, amount in (
                ("workspace.x_min", x, ws.x_min, ws.x_min - x),
                ("workspace.y_min", y, ws.y_min, ws.y_min - y),
                ("workspace.x_max", x, ws.x_max, x - ws.x_max),
                ("workspace.y_max", y, ws.y_max, y - ws.y_max),
            ):
                if amount > TOLERANCE:
                    out.append(Violation(bound, h, v, lim, amount, name))
            out.extend(_zone_violations(rails, name, h, x, y))
    return out


def _zone_violations(rails: Guardrails, name: str, h: int, x: float, y: float) -> list[Violation]:
    out: list[Violation] = []
    for k, b in enumerate(rails.keep_out_boxes):
        depth = min(x - b.x_min, b.x_max - x, y - b.y_min, b.y_max - y)
        if depth > TOLERANCE:
            out.append(Violation(f"keep_out_boxes[{k}]", h, depth, 0.0, depth, name))
    for k, c in enumerate(rails.keep_out_circles):
        dist = ((x - c.x) ** 2 + (y - c.y) ** 2) ** 0.5
        if c.radius - dist > TOLERANCE:
            out.append(
                Violation(f"keep_out_circles[{k}]", h, dist, c.radius, c.radius - dist, name)
            )
    return out


def check_plan(
    rails: Guardrails,
    actions: Tensor,
    frameskip: int,
    states: Tensor | None = None,
    state_labels: tuple[str, ...] = (),
) -> list[Violation]:
    """All violations of a plan: actions (H, A) and, if given, its probed states (H, D)."""
    out = check_actions(rails, actions, frameskip)
    if states is not None:
        out.extend(check_states(rails, states, state_labels))
    return out
