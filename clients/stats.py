"""Summaries of evaluation episodes: success rate with a Wilson interval, metric, timing."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from clients.closed_loop import Episode

Z_95 = 1.959963984540054
"""Standard normal quantile for a two-sided 95% interval."""


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion.

    Args:
        successes: Number of successes, ``0 <= successes <= trials``.
        trials: Number of trials (> 0).
        z: Normal quantile (1.96 for 95%).

    Returns:
        ``(low, high)`` within [0, 1].
    """
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials and trials > 0, got {successes}/{trials}")
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z / (1 + z2 / trials) * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Summary:
    """Aggregate of one controller's episodes on one set of seeds."""

    controller: str
    episodes: int
    successes: int
    success_rate: float
    ci_low: float
    ci_high: float
    metric_name: str
    mean_final_metric: float
    mean_best_metric: float
    mean_steps: float
    plans: int
    mean_plan_ms: float | None
    mean_round_trip_ms: float | None
    plan_ms_per_env_step: float | None

    def to_json(self) -> dict[str, Any]:
        """JSON-serialisable fields (NaN becomes None)."""
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in asdict(self).items()
        }


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


def summarise(name: str, episodes: Sequence[Episode]) -> Summary:
    """Summarise ``episodes`` of controller ``name``."""
    if not episodes:
        raise ValueError(f"no episodes to summarise for {name!r}")
    n = len(episodes)
    k = sum(e.success for e in episodes)
    low, high = wilson_interval(k, n)
    plan_ms = [v for e in episodes for v in e.plan_ms if v is not None]
    round_trips = [v for e in episodes for v in e.round_trip_ms] if plan_ms else []
    steps = sum(e.steps for e in episodes)
    return Summary(
        controller=name,
        episodes=n,
        successes=k,
        success_rate=k / n,
        ci_low=low,
        ci_high=high,
        metric_name=episodes[0].metric_name,
        mean_final_metric=float(np.mean([e.final_metric for e in episodes])),
        mean_best_metric=float(np.mean([e.best_metric for e in episodes])),
        mean_steps=steps / n,
        plans=sum(len(e.plan_ms) for e in episodes),
        mean_plan_ms=_mean(plan_ms),
        mean_round_trip_ms=_mean(round_trips),
        plan_ms_per_env_step=(sum(plan_ms) / steps) if plan_ms and steps else None,
    )
