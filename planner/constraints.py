"""Guardrails as batched tensors: action clamps, the step projection and state penalties.

Shapes: R requests, S samples, H planning steps, F frameskip, E env action dim,
A = F * E planning-action dim, P tracked positions, K keep-out boxes, C circles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor

from planner.guardrails import GuardrailError, Guardrails, point_label_pairs

_EPS = 1e-12


@dataclass(frozen=True)
class GuardrailTensors:
    """The guardrails of R requests, padded and stacked on one device."""

    low: Tensor  # (R, E)
    high: Tensor  # (R, E)
    max_step: Tensor  # (R,)
    workspace: Tensor  # (R, 4) x_min, y_min, x_max, y_max
    boxes: Tensor  # (R, K, 4)
    box_mask: Tensor  # (R, K)
    circles: Tensor  # (R, C, 3) x, y, radius
    circle_mask: Tensor  # (R, C)
    penalty: Tensor  # (R,)
    point_index: Tensor  # (P, 2) indices of x and y in the probed state
    stroke: bool
    frameskip: int

    @classmethod
    def stack(
        cls,
        rails: Sequence[Guardrails],
        state_labels: tuple[str, ...],
        frameskip: int,
        like: Tensor,
    ) -> GuardrailTensors:
        """Stack the guardrails of several requests (same env) onto ``like``'s device and dtype."""
        kinds = {g.step_kind for g in rails}
        if len({g.env_id for g in rails}) != 1 or len(kinds) != 1:
            raise GuardrailError("all requests of a batch must share one environment")
        pairs = point_label_pairs(rails[0].points, state_labels)

        def t(x: object) -> Tensor:
            return torch.as_tensor(x, dtype=like.dtype, device=like.device)

        k = max(1, *(len(g.keep_out_boxes) for g in rails))
        c = max(1, *(len(g.keep_out_circles) for g in rails))
        boxes = torch.zeros(len(rails), k, 4, dtype=like.dtype, device=like.device)
        box_mask = torch.zeros(len(rails), k, dtype=like.dtype, device=like.device)
        circles = torch.zeros(len(rails), c, 3, dtype=like.dtype, device=like.device)
        circles[..., 2] = 1.0
        circle_mask = torch.zeros(len(rails), c, dtype=like.dtype, device=like.device)
        for r, g in enumerate(rails):
            for i, b in enumerate(g.keep_out_boxes):
                boxes[r, i], box_mask[r, i] = t(b.as_tuple()), 1.0
            for i, ci in enumerate(g.keep_out_circles):
                circles[r, i], circle_mask[r, i] = t((ci.x, ci.y, ci.radius)), 1.0
        return cls(
            low=t([g.action_low for g in rails]),
            high=t([g.action_high for g in rails]),
            max_step=t([g.max_step for g in rails]),
            workspace=t([g.workspace.as_tuple() for g in rails]),
            boxes=boxes,
            box_mask=box_mask,
            circles=circles,
            circle_mask=circle_mask,
            penalty=t([g.penalty for g in rails]),
            point_index=torch.tensor(
                [[ix, iy] for _, ix, iy in pairs], dtype=torch.long, device=like.device
            ).reshape(-1, 2),
            stroke=rails[0].step_kind == "stroke",
            frameskip=frameskip,
        )

    def select(self, rows: Tensor) -> GuardrailTensors:
        """The guardrails of the requests ``rows`` (R',) long."""
        return GuardrailTensors(
            low=self.low[rows],
            high=self.high[rows],
            max_step=self.max_step[rows],
            workspace=self.workspace[rows],
            boxes=self.boxes[rows],
            box_mask=self.box_mask[rows],
            circles=self.circles[rows],
            circle_mask=self.circle_mask[rows],
            penalty=self.penalty[rows],
            point_index=self.point_index,
            stroke=self.stroke,
            frameskip=self.frameskip,
        )

    def box_centre_halfwidth(self) -> tuple[Tensor, Tensor]:
        """Centre and half-width of the action box tiled to planning actions, (R, A) each."""
        centre = ((self.low + self.high) / 2).repeat(1, self.frameskip)  # (R, A)
        half = ((self.high - self.low) / 2).repeat(1, self.frameskip)  # (R, A)
        return centre, half


def project_step(actions: Tensor, rails: GuardrailTensors) -> Tensor:
    """Shrink each env action (or stroke) to at most ``max_step`` long; differentiable.

    For a vector step the action is scaled toward zero (inside the box, since the
    box holds zero); for a stroke the end moves toward the start (inside the box,
    since the box is convex). ``actions`` (R, S, H, A) in env units.
    """
    a = rearrange(actions, "r s h (f e) -> r s h f e", f=rails.frameskip)  # (R, S, H, F, E)
    limit = rails.max_step[:, None, None, None, None]  # (R, 1, 1, 1, 1)
    if rails.stroke:
        start, end = a[..., :2], a[..., 2:]  # (R, S, H, F, 2)
        length = (end - start).norm(dim=-1, keepdim=True)  # (R, S, H, F, 1)
        scale = torch.clamp(limit / (length + _EPS), max=1.0)
        a = torch.cat([start, start + (end - start) * scale], dim=-1)
    else:
        length = a.norm(dim=-1, keepdim=True)  # (R, S, H, F, 1)
        a = a * torch.clamp(limit / (length + _EPS), max=1.0)
    return rearrange(a, "r s h f e -> r s h (f e)")


def clamp_actions(actions: Tensor, rails: GuardrailTensors) -> Tensor:
    """Clamp planning actions (R, S, H, A) onto the action box, then the largest step."""
    a = rearrange(actions, "r s h (f e) -> r s h f e", f=rails.frameskip)  # (R, S, H, F, E)
    low = rails.low[:, None, None, None, :]  # (R, 1, 1, 1, E)
    high = rails.high[:, None, None, None, :]
    a = torch.maximum(torch.minimum(a, high), low)
    return project_step(rearrange(a, "r s h f e -> r s h (f e)"), rails)


def squash(u: Tensor, rails: GuardrailTensors) -> Tensor:
    """Map unconstrained ``u`` (R, S, H, A) into the guardrails: tanh into the box, then step."""
    centre, half = rails.box_centre_halfwidth()  # (R, A)
    a = centre[:, None, None] + half[:, None, None] * torch.tanh(u)  # (R, S, H, A)
    return project_step(a, rails)


def unsquash(actions: Tensor, rails: GuardrailTensors) -> Tensor:
    """An unconstrained ``u`` whose :func:`squash` is (close to) ``actions`` inside the box."""
    centre, half = rails.box_centre_halfwidth()  # (R, A)
    ratio = (actions - centre[:, None, None]) / (half[:, None, None] + _EPS)
    return torch.atanh(ratio.clamp(-0.999, 0.999))  # (R, S, H, A)


def state_violation(states: Tensor, rails: GuardrailTensors) -> Tensor:
    """How far probed states break the state guardrails, summed: (R, S, H, D) -> (R, S).

    The workspace counts the distance outside the box; a keep-out zone counts the
    depth inside it (distance to its nearest edge). Units are the state's.
    """
    if rails.point_index.numel() == 0:
        return states.new_zeros(states.shape[:2])
    p = states[..., rails.point_index]  # (R, S, H, P, 2)
    ws = rails.workspace[:, None, None, None, :]  # (R, 1, 1, 1, 4)
    outside = (torch.relu(ws[..., :2] - p) + torch.relu(p - ws[..., 2:])).sum(-1)  # (R,S,H,P)
    q = p[..., None, :]  # (R, S, H, P, 1, 2)
    b = rails.boxes[:, None, None, None]  # (R, 1, 1, 1, K, 4)
    depth = torch.stack([q - b[..., :2], b[..., 2:] - q], dim=-1).amin(dim=(-1, -2))
    in_box = torch.relu(depth) * rails.box_mask[:, None, None, None]  # (R, S, H, P, K)
    circ = rails.circles[:, None, None, None]  # (R, 1, 1, 1, C, 3)
    dist = (q - circ[..., :2]).norm(dim=-1)  # (R, S, H, P, C)
    in_circle = torch.relu(circ[..., 2] - dist) * rails.circle_mask[:, None, None, None]
    total = outside + in_box.sum(-1) + in_circle.sum(-1)  # (R, S, H, P)
    return total.sum(dim=(-1, -2))  # (R, S)


def state_penalty(states: Tensor, rails: GuardrailTensors) -> Tensor:
    """Guardrail cost of probed states (R, S, H, D) -> (R, S): ``penalty`` per unit of violation."""
    return rails.penalty[:, None] * state_violation(states, rails)
