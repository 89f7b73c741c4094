"""The Wilson interval on known values, and episode summaries."""

from __future__ import annotations

import pytest

from clients.closed_loop import Episode
from clients.stats import summarise, wilson_interval


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        # Reference values of the Wilson score interval at 95% (z = 1.95996).
        (0, 10, 0.0, 0.2775),
        (5, 10, 0.2366, 0.7634),
        (10, 10, 0.7225, 1.0),
        (9, 10, 0.5958, 0.9821),
        (45, 50, 0.7864, 0.9565),
        (1, 1, 0.2065, 1.0),
    ],
)
def test_wilson_interval_known_values(k: int, n: int, low: float, high: float) -> None:
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=1e-4)
    assert hi == pytest.approx(high, abs=1e-4)


def test_wilson_interval_narrows_with_more_trials_and_refuses_nonsense() -> None:
    a = wilson_interval(9, 10)
    b = wilson_interval(90, 100)
    assert b[1] - b[0] < a[1] - a[0]
    assert b[0] < 0.9 < b[1]
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(3, 2)
    with pytest.raises(ValueError, match="trials > 0"):
        wilson_interval(0, 0)


def ep(success: bool, final: float, steps: int, plan_ms: list[float | None]) -> Episode:
    e = Episode("env", "c", 0, "distance", 10.0, success=success, steps=steps)
    e.final_metric, e.best_metric = final, final
    e.plan_ms = plan_ms
    e.round_trip_ms = [20.0] * len(plan_ms)
    return e


def test_summary_of_episodes() -> None:
    s = summarise("cem", [ep(True, 1.0, 10, [5.0, 7.0]), ep(False, 3.0, 30, [6.0])])
    assert (s.successes, s.episodes, s.success_rate) == (1, 2, 0.5)
    assert (s.ci_low, s.ci_high) == wilson_interval(1, 2)
    assert s.mean_final_metric == pytest.approx(2.0)
    assert s.mean_plan_ms == pytest.approx(6.0)
    assert s.plan_ms_per_env_step == pytest.approx(18.0 / 40)
    assert s.mean_steps == 20
    assert s.plans == 3
    base = summarise("noop", [ep(False, 9.0, 5, [None])])
    assert base.mean_plan_ms is None
    assert base.plan_ms_per_env_step is None
    assert base.to_json()["mean_plan_ms"] is None
