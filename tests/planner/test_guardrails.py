"""Guardrails: hard tables, tightening only, clamps, penalties, and the final check."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from planner import (
    Box2D,
    Budget,
    CEMConfig,
    Circle,
    GuardrailError,
    GuardrailRequest,
    Guardrails,
    ObjectiveConfig,
    Plan,
    PlanRefused,
    PlanRequest,
    Refusal,
    check_plan,
    guardrails_for,
    plan,
    plan_batch,
)
from planner.analytic import PointMassModel
from planner.constraints import GuardrailTensors, clamp_actions, squash, state_violation
from sims.maze_layouts import make_layout

RequestFactory = Callable[..., PlanRequest]  # the `request_for` fixture (conftest.py)


def test_tables_per_env() -> None:
    pusht = guardrails_for("worldplan/PushT-v0")
    assert pusht.workspace == Box2D(0, 0, 512, 512)
    assert (pusht.action_low, pusht.action_high) == ((-1, -1), (1, 1))
    umaze = guardrails_for("worldplan/Maze-v0", layout="umaze")
    assert umaze.keep_out_boxes == (Box2D(1.5, 0.5, 2.5, 2.5),)
    tworoom = guardrails_for("worldplan/Maze-v0", layout="tworoom", wall_x=30, door_y=20)
    # The wall is two boxes with the door |y - 20| <= 4 left open.
    assert [b.as_tuple() for b in tworoom.keep_out_boxes] == [(27, 4, 33, 16), (27, 24, 33, 60)]
    granular = guardrails_for("worldplan/Granular-v0")
    assert (granular.step_kind, granular.env_action_dim) == ("stroke", 4)
    with pytest.raises(GuardrailError, match="no guardrails for env id"):
        guardrails_for("worldplan/Nope-v0")
    with pytest.raises(GuardrailError, match="maze layout"):
        guardrails_for("worldplan/Maze-v0", layout="spiral")


def test_tighten_accepts_tighter_and_adds_zones(rails: Guardrails) -> None:
    tight = rails.tighten(
        GuardrailRequest(
            action_low=(-0.5, -1.0),
            action_high=(0.5, 0.2),
            max_step=0.3,
            workspace=Box2D(10, 20, 500, 400),
            keep_out_circles=(Circle(100, 100, 20),),
        )
    ).tighten(GuardrailRequest(keep_out_boxes=(Box2D(1, 2, 3, 4),)))
    assert tight.action_low == (-0.5, -1.0)
    assert tight.action_high == (0.5, 0.2)
    assert tight.max_step == 0.3
    assert tight.workspace == Box2D(10, 20, 500, 400)
    assert tight.keep_out_circles == (Circle(100, 100, 20),)
    assert tight.keep_out_boxes == (Box2D(1, 2, 3, 4),)
    assert tight.penalty == rails.penalty


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (
            GuardrailRequest(action_low=(-1.5, -1.0)),
            r"action_low\[0\] = -1.5 would loosen the hard bound -1",
        ),
        (
            GuardrailRequest(action_high=(1.0, 2.0)),
            r"action_high\[1\] = 2.0 would loosen the hard bound 1",
        ),
        (GuardrailRequest(max_step=1.5), r"max_step = 1.5 would loosen the hard bound 1.0"),
        (
            GuardrailRequest(workspace=Box2D(-5, 0, 512, 512)),
            r"workspace.x_min = -5 would loosen the hard bound 0",
        ),
        (GuardrailRequest(workspace=Box2D(0, 0, 512, 600)), r"workspace.y_max = 600 would loosen"),
        (GuardrailRequest(action_low=(-1.0,)), r"action_low needs 2 values, got 1"),
        (GuardrailRequest(action_low=(0.1, -1.0)), r"must contain the zero action"),
    ],
)
def test_loosening_is_refused(rails: Guardrails, request_: GuardrailRequest, message: str) -> None:
    with pytest.raises(GuardrailError, match=message):
        rails.tighten(request_)


def test_a_tightened_bound_cannot_be_loosened_again(rails: Guardrails) -> None:
    tight = rails.tighten(GuardrailRequest(max_step=0.2))
    with pytest.raises(GuardrailError, match=r"max_step = 0.5 would loosen the hard bound 0.2"):
        tight.tighten(GuardrailRequest(max_step=0.5))


def test_bad_zones_are_refused() -> None:
    with pytest.raises(GuardrailError, match="x_min < x_max"):
        Box2D(5, 0, 1, 1)
    with pytest.raises(GuardrailError, match="radius must be > 0"):
        Circle(0, 0, -1)
    with pytest.raises(GuardrailError, match="finite"):
        Circle(float("nan"), 0, 1)


def _tensors(rails: Guardrails, frameskip: int = 2) -> GuardrailTensors:
    labels = ("agent_x", "agent_y", "block_x", "block_y")
    return GuardrailTensors.stack([rails], labels, frameskip, torch.zeros(1))


def test_clamp_and_squash_respect_box_and_step(rails: Guardrails) -> None:
    tight = rails.tighten(GuardrailRequest(action_high=(0.5, 1.0), max_step=0.8))
    t = _tensors(tight)
    raw = torch.randn(1, 64, 3, 4, generator=torch.Generator().manual_seed(0)) * 3  # (R, S, H, F*E)
    for actions in (clamp_actions(raw, t), squash(raw, t)):
        steps = actions.reshape(-1, 2)
        assert (steps[:, 0] <= 0.5 + 1e-6).all()
        assert (steps >= -1 - 1e-6).all()
        assert (steps.norm(dim=1) <= 0.8 + 1e-6).all()
    inside = torch.full((1, 1, 3, 4), 0.1)
    assert torch.equal(clamp_actions(inside, t), inside)


def test_stroke_length_is_bounded() -> None:
    g = guardrails_for("worldplan/Granular-v0")
    t = GuardrailTensors.stack([g], ("pile_x", "pile_y"), 1, torch.zeros(1))
    strokes = clamp_actions(torch.tensor([[[[-1.0, -1.0, 1.0, 1.0]]]]), t)[0, 0, 0]
    assert strokes[:2].tolist() == [-1.0, -1.0]
    assert (strokes[2:] - strokes[:2]).norm().item() == pytest.approx(2.0)


def test_state_violation_measures_depth(rails: Guardrails) -> None:
    g = rails.tighten(
        GuardrailRequest(
            keep_out_boxes=(Box2D(100, 100, 200, 200),), keep_out_circles=(Circle(400, 400, 50),)
        )
    )
    t = _tensors(g)
    states = torch.tensor(
        [
            [[300.0, 300.0, 256.0, 256.0]],  # fine
            [[110.0, 150.0, 256.0, 256.0]],  # agent 10 deep in the box
            [[420.0, 400.0, 256.0, 256.0]],  # agent 30 deep in the circle
            [[256.0, 256.0, -7.0, 520.0]],  # block 7 left of and 8 above the workspace
        ]
    )[None]  # (R=1, S=4, H=1, D=4)
    assert state_violation(states, t)[0].tolist() == pytest.approx([0.0, 10.0, 30.0, 15.0])


def test_check_plan_names_bound_and_amount(rails: Guardrails) -> None:
    g = rails.tighten(GuardrailRequest(max_step=0.5, keep_out_circles=(Circle(100, 100, 10),)))
    actions = torch.tensor([[0.3, 0.2, 0.1, 0.0], [0.45, 0.45, 0.0, -1.25]])  # (H=2, F*E=4)
    states = torch.tensor([[50.0, 60.0], [104.0, 100.0]])
    found = check_plan(g, actions, 2, states, ("agent_x", "agent_y"))
    by_bound = {v.bound: v for v in found}
    assert sorted(v.bound for v in found) == [
        "action_low[1]",
        "keep_out_circles[0]",
        "max_step",
        "max_step",
    ]
    assert by_bound["action_low[1]"].amount == pytest.approx(0.25)
    assert by_bound["action_low[1]"].step == 1
    steps = sorted((v.subject, v.amount) for v in found if v.bound == "max_step")
    assert steps == [("action[0]", pytest.approx(0.45 * 2**0.5 - 0.5)), ("action[1]", 0.75)]
    assert by_bound["keep_out_circles[0]"].amount == pytest.approx(6.0)
    assert "agent at step 1 breaks keep_out_circles[0]" in str(by_bound["keep_out_circles[0]"])
    assert check_plan(g, actions[:1], 2, states[:1], ("agent_x", "agent_y")) == []


def test_planner_refuses_a_plan_it_cannot_make_safe(
    request_for: RequestFactory, model: PointMassModel, rails: Guardrails
) -> None:
    # From (100, 100) with steps of at most 0.01 (1 px per env action, 5 per planning step)
    # the workspace x >= 300 cannot be reached in 5 planning steps.
    g = rails.tighten(GuardrailRequest(max_step=0.01, workspace=Box2D(300, 0, 512, 512)))
    req = request_for((100.0, 100.0), (400.0, 100.0), guardrails=g, budget=Budget(max_iterations=5))
    (result,) = plan_batch(model, [req], CEMConfig(samples=32, elites=4))
    assert isinstance(result, Refusal)
    x_min = [v for v in result.violations if v.bound == "workspace.x_min"]
    assert len(x_min) == 5  # every imagined step
    # The best it can do is 5 px per planning step toward x = 300.
    assert 300 - 125 - 0.5 <= x_min[-1].amount < 300 - 100
    assert "workspace.x_min" in result.reason
    with pytest.raises(PlanRefused, match=r"agent at step 4 breaks workspace.x_min"):
        plan(model, req.z_obs, req.z_goal, CEMConfig(samples=32, elites=4), g, budget=req.budget)


def test_planner_steers_around_a_keep_out_zone(
    request_for: RequestFactory, model: PointMassModel, rails: Guardrails
) -> None:
    # Goal straight right; a disc sits where the straight path's imagined states would be.
    g = rails.tighten(GuardrailRequest(keep_out_circles=(Circle(250, 100, 60),)))
    config = CEMConfig(objective=ObjectiveConfig(frames="all"))
    req = request_for(
        (100.0, 100.0), (400.0, 100.0), guardrails=g, budget=Budget(max_iterations=30)
    )
    (result,) = plan_batch(model, [req], config)
    assert isinstance(result, Plan)
    dist = (result.states - torch.tensor([250.0, 100.0])).norm(dim=1)
    assert (dist >= 60 - 1e-3).all()


def test_maze_geometry_matches_the_simulator() -> None:
    umaze = guardrails_for("worldplan/Maze-v0", layout="umaze")
    inside = [
        w
        for w in make_layout("umaze", 32.0, 32.0).walls.tolist()
        if 0.5 <= (w[0] + w[2]) / 2 <= 3.5
    ]
    inside = [w for w in inside if 0.5 <= (w[1] + w[3]) / 2 <= 3.5]
    # The inner wall cells are exactly what the keep-out box covers.
    box = umaze.keep_out_boxes[0]
    assert min(w[0] for w in inside) == box.x_min
    assert max(w[2] for w in inside) == box.x_max
    assert min(w[1] for w in inside) == box.y_min
    assert max(w[3] for w in inside) == box.y_max
    assert sum((w[2] - w[0]) * (w[3] - w[1]) for w in inside) == pytest.approx(
        (box.x_max - box.x_min) * (box.y_max - box.y_min)
    )
    tworoom = guardrails_for("worldplan/Maze-v0", layout="tworoom", wall_x=25, door_y=40)
    walls = [tuple(w) for w in make_layout("tworoom", 25.0, 40.0).walls.tolist()]
    for b in tworoom.keep_out_boxes:
        assert b.as_tuple() in walls
    ws = tworoom.workspace
    assert (ws.x_min, ws.x_max) == (walls[0][2], walls[1][0])
