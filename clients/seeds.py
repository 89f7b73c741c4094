"""Every seed of an evaluation, in one place.

* Episode ``i`` of an evaluation with base seed ``S`` resets the env with ``S + i``
  (default base :data:`EVAL_SEED_BASE`; data collection uses seeds below it, so
  evaluation starts are held out).
* The goal trajectory's policy (see :mod:`clients.goals`) is seeded with
  ``reset seed + GOAL_POLICY_SEED_OFFSET + 1000 * redraw``.
* The random baseline's actions in the episode with reset seed ``s`` are seeded
  with ``s + RANDOM_SEED_OFFSET``.
* The service plans with ``seed = reset seed`` (mod 2**31), so a plan is repeatable.
"""

from __future__ import annotations

EVAL_SEED_BASE = 100_000
GOAL_POLICY_SEED_OFFSET = 7_000_000
GOAL_REDRAW_SEED_STRIDE = 1000
RANDOM_SEED_OFFSET = 3_000_000


def episode_seeds(base: int, episodes: int) -> list[int]:
    """The reset seeds of an evaluation: ``base, base + 1, ...``."""
    if episodes < 1 or base < 0:
        raise ValueError(f"need episodes >= 1 and base >= 0, got {episodes}, {base}")
    return [base + i for i in range(episodes)]


def goal_policy_seed(reset_seed: int, redraw: int) -> int:
    """Seed of the goal trajectory's policy for a reset seed and redraw number."""
    return reset_seed + GOAL_POLICY_SEED_OFFSET + GOAL_REDRAW_SEED_STRIDE * redraw
