"""Each optimiser reaches the analytic model's known optimum; warm start, budgets, seeds, batch."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
import torch

from planner import (
    Budget,
    CEMConfig,
    Circle,
    GradientConfig,
    GuardrailRequest,
    Guardrails,
    MPPIConfig,
    Plan,
    PlanRequest,
    Refusal,
    plan,
    plan_batch,
    shift_plan,
)
from planner.analytic import PointMassModel
from planner.cem import CEM, coloured
from planner.config import OptimiserConfig

PROBLEMS = [
    ((100.0, 100.0), (400.0, 300.0)),
    ((450.0, 80.0), (120.0, 420.0)),
    ((256.0, 256.0), (300.0, 200.0)),
]
TOLERANCE_PX = 2.0
#: Optimiser, its config, and the iterations it is given to reach the optimum within TOLERANCE_PX.
OPTIMISERS: list[tuple[OptimiserConfig, int]] = [
    (CEMConfig(), 30),
    (CEMConfig(noise_beta=2.0, keep_elites=0.3), 30),
    (MPPIConfig(), 30),
    (GradientConfig(), 100),
]
IDS = ["cem", "icem", "mppi", "gradient"]

RequestFactory = Callable[..., PlanRequest]  # the `request_for` fixture (conftest.py)


def _cost_at(px: float) -> float:
    """Latent MSE of the analytic model for a final position error of ``px`` (in both axes)."""
    return (px / 256.0) ** 2


def _plans(results: Sequence[Plan | Refusal]) -> list[Plan]:
    assert all(isinstance(r, Plan) for r in results), results
    return [r for r in results if isinstance(r, Plan)]


@pytest.mark.parametrize(("config", "iterations"), OPTIMISERS, ids=IDS)
def test_reaches_the_known_optimum(
    request_for: RequestFactory, model: PointMassModel, config: OptimiserConfig, iterations: int
) -> None:
    budget = Budget(max_iterations=iterations)
    requests = [request_for(s, g, budget=budget, seed=i) for i, (s, g) in enumerate(PROBLEMS)]
    for (start, goal), p in zip(PROBLEMS, _plans(plan_batch(model, requests, config)), strict=True):
        error = (p.states[-1] - torch.tensor(goal)).norm().item()
        assert error < TOLERANCE_PX, (start, goal, error)
        assert p.cost < _cost_at(TOLERANCE_PX)
        assert p.trace[-1] < p.trace[0]
        # The plan really is what the model was asked: the probed end state follows the actions.
        moved = p.actions.reshape(-1, 2).sum(0) * model.scale
        assert torch.allclose(torch.tensor(start) + moved, p.states[-1], atol=1e-2)


def _iterations_to(p: Plan, threshold: float) -> int:
    best = float("inf")
    for i, c in enumerate(p.trace, start=1):
        best = min(best, c)
        if best <= threshold:
            return i
    return len(p.trace) + 1000


@pytest.mark.parametrize(("config", "iterations"), OPTIMISERS, ids=IDS)
def test_warm_start_reaches_the_optimum_in_fewer_iterations(
    request_for: RequestFactory, model: PointMassModel, config: OptimiserConfig, iterations: int
) -> None:
    start, goal = (100.0, 100.0), (400.0, 300.0)
    budget = Budget(max_iterations=iterations)
    first = _plan(model, (request_for(start, goal, budget=budget)), config)
    # One planning step is executed; the world ends up 8 px off the imagined state.
    reached = first.states[0] + torch.tensor([8.0, -6.0])
    next_start = (float(reached[0]), float(reached[1]))
    init = shift_plan(first, 1, fill=model.action_mean)
    cold = _plan(model, (request_for(next_start, goal, budget=budget, seed=1)), config)
    warm = _plan(
        model,
        (request_for(next_start, goal, budget=budget, seed=1, init=init)),
        config,
    )
    threshold = _cost_at(1.0)
    assert warm.warm_started
    assert not cold.warm_started
    assert _iterations_to(warm, threshold) < _iterations_to(cold, threshold) <= iterations


class FakeClock:
    """Advances 10 ms per reading."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        t = self.now
        self.now += 0.010
        return t


def _plan(
    model: PointMassModel, req: PlanRequest, config: OptimiserConfig, clock: FakeClock | None = None
) -> Plan:
    extra = {"clock": clock} if clock is not None else {}
    return plan(
        model,
        req.z_obs,
        req.z_goal,
        config,
        req.guardrails,
        budget=req.budget,
        init=req.init,
        seed=req.seed,
        **extra,
    )


SMALL: list[OptimiserConfig] = [
    CEMConfig(samples=32, elites=4),
    CEMConfig(samples=32, elites=4, noise_beta=2.0, keep_elites=0.5),
    MPPIConfig(samples=32, elites=4),
    GradientConfig(restarts=3),
]


@pytest.mark.parametrize("config", SMALL, ids=IDS)
def test_deterministic_for_a_seed(
    request_for: RequestFactory, model: PointMassModel, config: OptimiserConfig
) -> None:
    budget = Budget(max_iterations=5)
    a, b, c = (
        _plan(
            model,
            (request_for((50.0, 60.0), (300.0, 310.0), budget=budget, seed=s)),
            config,
        )
        for s in (7, 7, 8)
    )
    assert torch.equal(a.actions, b.actions)
    assert a.trace == b.trace
    if not isinstance(config, GradientConfig):
        # (Gradient restart 0 starts at the mean action whatever the seed, and may win.)
        assert not torch.equal(a.actions, c.actions)


@pytest.mark.parametrize("config", SMALL, ids=IDS)
def test_batched_equals_one_by_one(
    request_for: RequestFactory,
    model: PointMassModel,
    config: OptimiserConfig,
    rails: Guardrails,
) -> None:
    tight = rails.tighten(GuardrailRequest(max_step=0.5, keep_out_circles=(Circle(250, 200, 30),)))
    init = torch.full((config.horizon, model.action_dim), 0.1)
    requests = [
        request_for((50.0, 60.0), (300.0, 310.0), budget=Budget(max_iterations=4), seed=1),
        request_for(
            (400.0, 60.0), (100.0, 300.0), budget=Budget(max_iterations=7), seed=2, guardrails=tight
        ),
        request_for(
            (200.0, 200.0), (220.0, 260.0), budget=Budget(max_iterations=5), seed=3, init=init
        ),
    ]
    batched = _plans(plan_batch(model, requests, config))
    alone = [_plans(plan_batch(model, [r], config))[0] for r in requests]
    for b, a in zip(batched, alone, strict=True):
        assert torch.allclose(b.actions, a.actions, atol=1e-6)
        assert b.iterations == a.iterations
        assert b.trace == pytest.approx(a.trace, rel=1e-5, abs=1e-9)
    assert [p.iterations for p in batched] == [4, 7, 5]


@pytest.mark.parametrize("config", SMALL, ids=IDS)
def test_budget_stops(
    request_for: RequestFactory, model: PointMassModel, config: OptimiserConfig
) -> None:
    far = ((50.0, 60.0), (300.0, 310.0))
    by_iterations = _plan(model, (request_for(*far, budget=Budget(max_iterations=6))), config)
    assert (by_iterations.iterations, by_iterations.stopped_because) == (6, "max_iterations")

    timed = request_for(*far, budget=Budget(max_iterations=1000, max_ms=55.0))
    by_time = _plan(model, (timed), config, FakeClock())
    # 10 ms per iteration: a 6th would end at 60 ms > 55 ms, so it stops after 5.
    assert (by_time.iterations, by_time.stopped_because) == (5, "max_ms")
    assert by_time.elapsed_ms == pytest.approx(50.0)
    assert by_time.trace_ms == pytest.approx((10.0, 20.0, 30.0, 40.0, 50.0))

    # Start on the goal: the first iteration scores the data's mean action (stand still)
    # at cost 0, nothing improves afterwards, so patience 2 stops after 3 iterations.
    still = request_for(
        (200.0, 200.0), (200.0, 200.0), budget=Budget(max_iterations=50, patience=2)
    )
    converged = _plan(model, (still), config)
    assert (converged.iterations, converged.stopped_because) == (3, "converged")
    assert converged.cost == pytest.approx(0.0, abs=1e-10)


def test_shift_plan() -> None:
    actions = torch.arange(12.0).reshape(3, 4)
    assert torch.equal(shift_plan(actions, 0), actions)
    assert torch.equal(shift_plan(actions, 1), torch.stack([actions[1], actions[2], actions[2]]))
    zeros = torch.zeros(4)
    assert torch.equal(shift_plan(actions, 2, fill=zeros), torch.stack([actions[2], zeros, zeros]))
    assert torch.equal(shift_plan(actions, 5, fill=zeros), torch.zeros(3, 4))
    # To another horizon: cut the unexecuted rows, or pad them with the fill.
    assert torch.equal(shift_plan(actions, 1, horizon=1), actions[1:2])
    longer = shift_plan(actions, 1, horizon=5)
    assert torch.equal(longer, torch.stack([actions[1], actions[2], *[actions[2]] * 3]))
    assert torch.equal(shift_plan(actions, 3, fill=zeros, horizon=2), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="horizon must be"):
        shift_plan(actions, 1, horizon=0)
    with pytest.raises(ValueError, match="executed_steps must be >= 0"):
        shift_plan(actions, -1)
    with pytest.raises(ValueError, match="fill must be"):
        shift_plan(actions, 1, fill=torch.zeros(3))


def test_bad_init_is_refused(request_for: RequestFactory, model: PointMassModel) -> None:
    bad = request_for((1.0, 1.0), (2.0, 2.0), init=torch.zeros(4, model.action_dim))
    with pytest.raises(ValueError, match=r"init must be finite with shape \(5, 10\)"):
        plan_batch(model, [bad], CEMConfig())


def test_configs_validate() -> None:
    with pytest.raises(ValueError, match="elites"):
        CEMConfig(samples=10, elites=20)
    with pytest.raises(ValueError, match="temperature"):
        MPPIConfig(temperature=0.0)
    with pytest.raises(ValueError, match="max_iterations"):
        Budget(max_iterations=0)
    with pytest.raises(ValueError, match="beta1"):
        GradientConfig(beta1=1.0)
    with pytest.raises(ValueError, match="noise_beta"):
        CEMConfig(noise_beta=-1.0)
    with pytest.raises(ValueError, match="keep_elites"):
        CEMConfig(keep_elites=1.5)
    assert CEMConfig(samples=4, elites=4, keep_elites=1.0).kept == 3  # the mean stays sample 0


def test_kept_elites_make_each_iteration_no_worse(
    request_for: RequestFactory, model: PointMassModel
) -> None:
    """The best kept elite is scored again, so an iteration's best cost never goes up."""
    budget = Budget(max_iterations=15)
    requests = [request_for(s, g, budget=budget, seed=i) for i, (s, g) in enumerate(PROBLEMS)]
    kept = CEMConfig(samples=16, elites=4, keep_elites=0.5)
    for p in _plans(plan_batch(model, requests, kept)):
        assert all(b <= a + 1e-12 for a, b in zip(p.trace, p.trace[1:], strict=False)), p.trace
    # Without them a small search does lose its best sequence now and then.
    plain = _plans(plan_batch(model, requests, CEMConfig(samples=16, elites=4)))
    assert any(b > a for p in plain for a, b in zip(p.trace, p.trace[1:], strict=False))


@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0, 2.5])
@pytest.mark.parametrize("steps", [1, 2, 5, 24, 25])
def test_coloured_noise_has_unit_variance_and_its_colour(beta: float, steps: int) -> None:
    gen = torch.Generator().manual_seed(0)
    white = torch.randn(40_000, steps, generator=gen, dtype=torch.float64)
    x = coloured(white, beta)
    assert x.shape == white.shape
    assert torch.allclose(x.std(0), torch.ones(steps, dtype=torch.float64), atol=0.03)
    assert x.mean().abs() < 0.02
    if steps < 5:
        return
    lag1 = (x[:, :-1] * x[:, 1:]).mean().item()
    # White noise is uncorrelated in time; 1/f^2 noise is mostly the slow drift.
    assert (lag1 < 0.03) if beta == 0 else (lag1 > 0.15 * beta)


@pytest.mark.parametrize("config", [CEMConfig(horizon=3, init_std=2.0), MPPIConfig(horizon=3)])
def test_resized_keeps_the_search_and_a_tenth_as_elites(config: CEMConfig | MPPIConfig) -> None:
    small, tiny = config.resized(100), config.resized(5)
    assert (small.samples, small.elites, tiny.samples, tiny.elites) == (100, 10, 5, 1)
    assert (small.horizon, small.init_std, small.min_std) == (3, config.init_std, config.min_std)
    with pytest.raises(ValueError, match="samples must be"):
        config.resized(0)


class _TrainingModel(PointMassModel, torch.nn.Module):
    def __init__(self) -> None:
        torch.nn.Module.__init__(self)
        PointMassModel.__init__(self)


def test_a_model_in_training_mode_is_refused(request_for: RequestFactory) -> None:
    m = _TrainingModel()
    req = request_for((1.0, 1.0), (2.0, 2.0))
    with pytest.raises(ValueError, match=r"training mode .* call model.eval\(\) first"):
        plan_batch(m, [req], CEMConfig())
    m.eval()
    assert isinstance(plan_batch(m, [req], CEMConfig(samples=8, elites=2))[0], Plan)


def test_search_noise_is_coloured_along_env_steps(
    request_for: RequestFactory, model: PointMassModel
) -> None:
    from planner.api import make_optimiser  # noqa: PLC0415
    from planner.problem import Problem  # noqa: PLC0415

    config = CEMConfig(noise_beta=2.0)
    problem = Problem(model, [request_for((1.0, 1.0), (2.0, 2.0))], config.objective, 5)
    search = make_optimiser(config, problem)
    assert isinstance(search, CEM)
    eps = search.noise(torch.tensor([0]), 4000)  # (1, S, H, fs * 2)
    steps = eps.reshape(4000, 5 * model.frameskip, 2)  # (S, env steps, A)
    assert torch.allclose(steps.std(0), torch.ones(()), atol=0.06)
    lag1 = (steps[:, :-1] * steps[:, 1:]).mean(0)  # neighbouring env steps, per axis
    assert bool((lag1 > 0.6).all())
    assert abs(float((steps[..., 0] * steps[..., 1]).mean())) < 0.05
