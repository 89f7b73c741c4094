"""Anytime stopping: iterations, wall time (from an injected clock) and patience."""

from __future__ import annotations

import math

from planner.config import Budget


class BudgetTracker:
    """Follows one request's progress and decides when it has spent its budget.

    The time limit is kept ahead of time: the optimiser stops when one more
    iteration, as long as the last one, would pass ``max_ms``.
    """

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.trace: list[float] = []
        self.trace_ms: list[float] = []
        self.best: list[float] = []
        self.stopped_because: str | None = None

    @property
    def done(self) -> bool:
        """Whether the request has stopped."""
        return self.stopped_because is not None

    @property
    def elapsed_ms(self) -> float:
        """Wall time at the last recorded iteration."""
        return self.trace_ms[-1] if self.trace_ms else 0.0

    def record(self, iteration_cost: float, best_cost: float, elapsed_ms: float) -> None:
        """Log one iteration (its lowest cost, the best so far, the time) and maybe stop."""
        last_ms = elapsed_ms - self.elapsed_ms
        self.trace.append(iteration_cost)
        self.trace_ms.append(elapsed_ms)
        self.best.append(best_cost)
        b = self.budget
        n = len(self.trace)
        if n >= b.max_iterations:
            self.stopped_because = "max_iterations"
        elif b.max_ms is not None and elapsed_ms + last_ms > b.max_ms:
            self.stopped_because = "max_ms"
        elif b.patience is not None and n > b.patience and self._stalled(b.patience):
            self.stopped_because = "converged"

    def _stalled(self, patience: int) -> bool:
        before, now = self.best[-1 - patience], self.best[-1]
        if not math.isfinite(before):
            return False
        return before - now <= self.budget.atol + self.budget.rtol * abs(now)
