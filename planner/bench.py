"""``worldplan bench planner``: our optimisers side by side on one model.

For each optimiser: wall time per plan (p50 / p95), final cost, how far the plan
ends from the goal (the analytic model knows it exactly), iterations, and the
time until the best cost first reached the optimum's tolerance. Three runs each:
cold (one request at a time), warm (the next MPC step, seeded by the shifted
previous plan, after the world moved 10 px off the imagined state) and batched
(all problems in one call, time per request).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import torch

from planner.analytic import PointMassModel
from planner.api import plan_batch
from planner.config import Budget, CEMConfig, GradientConfig, MPPIConfig, OptimiserConfig
from planner.guardrails import guardrails_for
from planner.types import Plan, PlanRequest, Refusal, shift_plan

#: Default config and iteration budget per optimiser (the budgets the tests use).
OPTIMISERS: dict[str, tuple[OptimiserConfig, int]] = {
    "cem": (CEMConfig(), 30),
    "mppi": (MPPIConfig(), 30),
    "gradient": (GradientConfig(), 100),
}
#: A plan "reaches the optimum" when it ends this close to the goal (px).
TOLERANCE_PX = 2.0


@dataclass(frozen=True)
class Problem:
    """A start and a goal position in px."""

    start: tuple[float, float]
    goal: tuple[float, float]


def problems(count: int, seed: int) -> list[Problem]:
    """Random start/goal pairs inside push-T's workspace, at least 100 px apart."""
    gen = torch.Generator().manual_seed(seed)
    out: list[Problem] = []
    while len(out) < count:
        s, g = (torch.rand(2, 2, generator=gen) * 412 + 50).tolist()
        if (torch.tensor(s) - torch.tensor(g)).norm() >= 100:
            out.append(Problem((s[0], s[1]), (g[0], g[1])))
    return out


def _request(model: PointMassModel, p: Problem, budget: Budget, seed: int) -> PlanRequest:
    return PlanRequest(
        z_obs=model.encode(torch.tensor([[p.start]])),
        z_goal=model.encode(torch.tensor([[p.goal]])),
        guardrails=guardrails_for(model.env_id),
        budget=budget,
        seed=seed,
    )


def _time_to_optimum(p: Plan, threshold: float) -> float | None:
    best = float("inf")
    for cost, ms in zip(p.trace, p.trace_ms, strict=True):
        best = min(best, cost)
        if best <= threshold:
            return ms
    return None


def _record(
    p: Plan | Refusal, goal: tuple[float, float], ms: float, threshold: float
) -> dict[str, object]:
    if isinstance(p, Refusal):
        return {"refused": True, "ms": ms, "reason": p.reason}
    error = float((p.states[-1] - torch.tensor(goal)).norm())
    return {
        "refused": False,
        "ms": ms,
        "cost": p.cost,
        "error_px": error,
        "iterations": p.iterations,
        "time_to_optimum_ms": _time_to_optimum(p, threshold),
    }


def _runs(
    model: PointMassModel, config: OptimiserConfig, budget: Budget, probs: list[Problem]
) -> Iterator[tuple[str, dict[str, object]]]:
    """Yield ``(mode, record)`` for every cold, warm and batched plan."""
    threshold = (TOLERANCE_PX / model.extent) ** 2 / 2  # latent MSE of a 2-px error
    for i, prob in enumerate(probs):
        req = _request(model, prob, budget, seed=i)
        t0 = time.perf_counter()
        (first,) = plan_batch(model, [req], config)
        yield "cold", _record(first, prob.goal, (time.perf_counter() - t0) * 1e3, threshold)
        if isinstance(first, Refusal):
            continue
        moved = first.states[0] + torch.tensor([6.0, -8.0])  # the world drifts 10 px
        nxt = Problem((float(moved[0]), float(moved[1])), prob.goal)
        init = shift_plan(first, 1, fill=model.action_mean)
        warm = replace(_request(model, nxt, budget, seed=i), init=init)
        t0 = time.perf_counter()
        (second,) = plan_batch(model, [warm], config)
        yield "warm", _record(second, prob.goal, (time.perf_counter() - t0) * 1e3, threshold)
    reqs = [_request(model, p, budget, seed=i) for i, p in enumerate(probs)]
    t0 = time.perf_counter()
    results = plan_batch(model, reqs, config)
    per = (time.perf_counter() - t0) * 1e3 / len(reqs)
    for prob, res in zip(probs, results, strict=True):
        yield "batched", _record(res, prob.goal, per, threshold)


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summarise(records: list[dict[str, object]]) -> dict[str, object]:
    """p50 / p95 of time per plan and the medians of cost, error and time to optimum."""
    ok = [r for r in records if not r["refused"]]

    def col(key: str) -> list[float]:
        return [float(v) for r in ok if isinstance(v := r[key], int | float)]

    reached = col("time_to_optimum_ms")
    return {
        "plans": len(records),
        "refused": len(records) - len(ok),
        "ms_p50": _quantile(col("ms"), 0.5),
        "ms_p95": _quantile(col("ms"), 0.95),
        "cost_p50": _quantile(col("cost"), 0.5),
        "error_px_p50": _quantile(col("error_px"), 0.5),
        "error_px_max": max(col("error_px"), default=None),
        "iterations_p50": _quantile(col("iterations"), 0.5),
        "reached_optimum": len(reached),
        "time_to_optimum_ms_p50": statistics.median(reached) if reached else None,
    }


def run(
    names: list[str],
    count: int,
    seed: int,
    progress: Callable[
        [Iterator[tuple[str, dict[str, object]]], int], Iterator[tuple[str, dict[str, object]]]
    ],
) -> dict[str, object]:
    """Benchmark the named optimisers on ``count`` analytic problems; a JSON-ready dict."""
    model = PointMassModel()
    probs = problems(count, seed)
    rows: list[dict[str, object]] = []
    for name in names:
        config, iterations = OPTIMISERS[name]
        per_mode: dict[str, list[dict[str, object]]] = {"cold": [], "warm": [], "batched": []}
        for mode, rec in progress(
            _runs(model, config, Budget(max_iterations=iterations), probs), 3 * count
        ):
            per_mode[mode].append(rec)
        for mode, recs in per_mode.items():
            rows.append(
                {
                    "optimiser": name,
                    "mode": mode,
                    "budget_iterations": iterations,
                    **summarise(recs),
                }
            )
    return {
        "model": "analytic point mass (push-T units: px, 5 env actions per planning step)",
        "problems": count,
        "seed": seed,
        "tolerance_px": TOLERANCE_PX,
        "torch_threads": torch.get_num_threads(),
        "device": "cpu",
        "rows": rows,
    }


def format_table(result: dict[str, object]) -> str:
    """A plain-text table of :func:`run`'s rows."""
    head = (
        f"{'optimiser':<9} {'mode':<7} {'ms p50':>8} {'ms p95':>8} {'cost p50':>10} "
        f"{'err px p50':>10} {'err px max':>10} {'iters':>5} {'reached':>7} {'t-opt ms':>8}"
    )
    lines = [head, "-" * len(head)]

    def f(v: object, spec: str) -> str:
        return format(v, spec) if isinstance(v, int | float) else "-"

    rows = result["rows"]
    assert isinstance(rows, list)
    for r in rows:
        lines.append(
            f"{r['optimiser']:<9} {r['mode']:<7} {f(r['ms_p50'], '8.1f')} {f(r['ms_p95'], '8.1f')} "
            f"{f(r['cost_p50'], '10.2e')} {f(r['error_px_p50'], '10.2f')} "
            f"{f(r['error_px_max'], '10.2f')} {f(r['iterations_p50'], '5.0f')} "
            f"{r['reached_optimum']:>3}/{r['plans'] - r['refused']:<3} "
            f"{f(r['time_to_optimum_ms_p50'], '8.1f')}"
        )
    return "\n".join(lines)
