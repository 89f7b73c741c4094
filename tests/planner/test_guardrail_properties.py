"""Property: every returned plan respects random keep-out zones and tightened bounds.

The check here is independent of the planner's own: positions are recomputed in
float64 from the returned actions with the analytic model's closed form.
"""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from planner import (
    Box2D,
    Budget,
    CEMConfig,
    Circle,
    GradientConfig,
    GuardrailRequest,
    MPPIConfig,
    Plan,
    PlanRequest,
    Refusal,
    guardrails_for,
    plan_batch,
)
from planner.analytic import PointMassModel
from planner.config import OptimiserConfig

MODEL = PointMassModel(frameskip=2)
HORIZON = 3
CONFIGS: list[OptimiserConfig] = [
    CEMConfig(horizon=HORIZON, samples=48, elites=6),
    MPPIConfig(horizon=HORIZON, samples=48, elites=6),
    GradientConfig(horizon=HORIZON, restarts=4),
]
SLACK = 1e-3  # px and action units: float32 planning vs the float64 check here

coord = st.floats(20, 492)
circles = st.builds(Circle, coord, coord, st.floats(5, 80))
boxes = st.builds(
    lambda x, y, w, h: Box2D(x, y, x + w, y + h), coord, coord, st.floats(5, 120), st.floats(5, 120)
)


@st.composite
def requests(draw: st.DrawFn) -> GuardrailRequest:
    lo = tuple(draw(st.floats(-1, 0)) for _ in range(2))
    hi = tuple(draw(st.floats(0, 1)) for _ in range(2))
    x0, y0 = draw(st.floats(0, 150)), draw(st.floats(0, 150))
    x1, y1 = draw(st.floats(362, 512)), draw(st.floats(362, 512))
    return GuardrailRequest(
        action_low=lo,
        action_high=hi,
        max_step=draw(st.floats(0.005, 1.0)),
        workspace=Box2D(x0, y0, x1, y1),
        keep_out_boxes=tuple(draw(st.lists(boxes, max_size=2))),
        keep_out_circles=tuple(draw(st.lists(circles, max_size=3))),
    )


def _respects(p: Plan, start: torch.Tensor, g: GuardrailRequest, zones: GuardrailRequest) -> None:
    a = p.actions.double().reshape(HORIZON, MODEL.frameskip, 2)
    assert g.action_low is not None
    assert g.action_high is not None
    assert g.max_step is not None
    assert g.workspace is not None
    assert (a >= torch.tensor(g.action_low, dtype=torch.float64) - SLACK).all()
    assert (a <= torch.tensor(g.action_high, dtype=torch.float64) + SLACK).all()
    assert (a.norm(dim=-1) <= g.max_step + SLACK).all()
    pos = start + torch.cumsum(a.sum(1), dim=0) * MODEL.scale  # (H, 2) px
    ws = g.workspace
    assert (pos[:, 0] >= ws.x_min - SLACK).all()
    assert (pos[:, 0] <= ws.x_max + SLACK).all()
    assert (pos[:, 1] >= ws.y_min - SLACK).all()
    assert (pos[:, 1] <= ws.y_max + SLACK).all()
    for b in zones.keep_out_boxes:
        depth = torch.stack(
            [pos[:, 0] - b.x_min, b.x_max - pos[:, 0], pos[:, 1] - b.y_min, b.y_max - pos[:, 1]]
        ).amin(0)
        assert (depth <= SLACK).all(), (b, pos)
    for c in zones.keep_out_circles:
        dist = (pos - torch.tensor([c.x, c.y], dtype=torch.float64)).norm(dim=1)
        assert (dist >= c.radius - SLACK).all(), (c, pos)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    request=requests(),
    start=st.tuples(st.floats(0, 512), st.floats(0, 512)),
    goal=st.tuples(st.floats(0, 512), st.floats(0, 512)),
    which=st.integers(0, len(CONFIGS) - 1),
    seed=st.integers(0, 2**31 - 1),
)
def test_returned_plans_respect_every_guardrail(
    request: GuardrailRequest,
    start: tuple[float, float],
    goal: tuple[float, float],
    which: int,
    seed: int,
) -> None:
    rails = guardrails_for("worldplan/PushT-v0").tighten(request)
    req = PlanRequest(
        z_obs=MODEL.encode(torch.tensor([[start]])),
        z_goal=MODEL.encode(torch.tensor([[goal]])),
        guardrails=rails,
        budget=Budget(max_iterations=4),
        seed=seed,
    )
    (result,) = plan_batch(MODEL, [req], CONFIGS[which])
    if isinstance(result, Refusal):
        assert result.violations
        assert all(v.amount > 0 for v in result.violations)
        assert result.reason
        event("refused")
    else:
        _respects(result, torch.tensor(start, dtype=torch.float64), request, request)
        event("returned a plan")
