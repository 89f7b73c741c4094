"""Frozen, validated configuration of the objective, the budgets and the three optimisers.

Every config is built once and never mutated; a bad value raises ``ValueError``
saying what was wrong and what would be right.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

Distance = Literal["mse", "l1"]
Frames = Literal["last", "all"]


def _tenth(samples: int) -> int:
    """Elites of a resized CEM/MPPI search: the best tenth of the samples, at least 1."""
    return max(1, samples // 10)


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _non_negative(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def _positive_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


@dataclass(frozen=True)
class ObjectiveConfig:
    """The task cost: latent distance between imagined and goal features.

    ``cost = w . d_visual + alpha * w . d_proprio`` where ``d`` is the per-frame
    distance (MSE or L1 over patch tokens and feature dims) to the goal's last
    frame, and ``w`` weighs the imagined frames: only the last one, or all of them
    with ``discount ** (H - 1 - t)`` (normalised to sum to 1).
    """

    distance: Distance = "mse"
    """Per-element distance: ``mse`` (DINO-WM) or ``l1`` (V-JEPA 2-AC)."""
    frames: Frames = "last"
    """Score the last imagined frame only (DINO-WM default) or all frames."""
    discount: float = 1.0
    """With ``frames="all"``: weight of a frame relative to the next one (1 = uniform)."""
    alpha: float = 0.0
    """Weight of the proprio distance (DINO-WM uses 0.1 when the goal proprio is known)."""

    def __post_init__(self) -> None:
        if self.distance not in ("mse", "l1"):
            raise ValueError(f"distance must be 'mse' or 'l1', got {self.distance!r}")
        if self.frames not in ("last", "all"):
            raise ValueError(f"frames must be 'last' or 'all', got {self.frames!r}")
        _positive("discount", self.discount)
        _non_negative("alpha", self.alpha)


@dataclass(frozen=True)
class Budget:
    """How much one request may spend; planning is anytime and stops at the first limit hit.

    At least one iteration always runs, so there is always a plan to return.
    """

    max_iterations: int = 30
    """Largest number of optimiser iterations."""
    max_ms: float | None = None
    """Largest wall time in milliseconds (``None``: no time limit)."""
    patience: int | None = None
    """Stop when the best cost has not improved by more than the tolerance over this
    many iterations (``None``: never stop for convergence)."""
    atol: float = 1e-6
    """Absolute part of the improvement tolerance."""
    rtol: float = 1e-3
    """Relative part of the improvement tolerance (times the best cost)."""

    def __post_init__(self) -> None:
        _positive_int("max_iterations", self.max_iterations)
        if self.max_ms is not None:
            _non_negative("max_ms", self.max_ms)
        if self.patience is not None:
            _positive_int("patience", self.patience)
        _non_negative("atol", self.atol)
        _non_negative("rtol", self.rtol)


@dataclass(frozen=True)
class CEMConfig:
    """Cross-entropy method; the defaults are DINO-WM's (horizon 5, 300 samples, top 30)."""

    horizon: int = 5
    """Planning steps H (each is ``frameskip`` env actions)."""
    samples: int = 300
    """Action sequences drawn per iteration and request."""
    elites: int = 30
    """Lowest-cost samples that refit the Gaussian."""
    init_std: float = 1.0
    """Initial std in normalised action space (a cold start is N(0, init_std))."""
    warm_init_std: float = 0.3
    """Initial std around a warm-start plan."""
    min_std: float = 1e-3
    """Floor of the std, so that the search never freezes completely."""
    noise_beta: float = 0.0
    """Colour of the sampling noise along the env steps of a sequence: power spectral
    density ``1 / f ** noise_beta`` (0: white, as DINO-WM; iCEM uses 2 to 2.5, which
    draws smooth, persistent pushes). The marginal std stays 1 either way."""
    keep_elites: float = 0.0
    """Fraction of an iteration's elites carried unchanged into the next iteration's
    samples (iCEM keeps 0.3), so a good sequence is never lost to resampling."""
    objective: ObjectiveConfig = ObjectiveConfig()
    """The task cost."""

    def __post_init__(self) -> None:
        _positive_int("horizon", self.horizon)
        _positive_int("samples", self.samples)
        _positive_int("elites", self.elites)
        if self.elites > self.samples:
            raise ValueError(f"elites ({self.elites}) must be <= samples ({self.samples})")
        _positive("init_std", self.init_std)
        _positive("warm_init_std", self.warm_init_std)
        _non_negative("min_std", self.min_std)
        if not (isinstance(self.noise_beta, int | float) and 0 <= self.noise_beta <= 4):
            raise ValueError(f"noise_beta must be a number in [0, 4], got {self.noise_beta!r}")
        if not (isinstance(self.keep_elites, int | float) and 0 <= self.keep_elites <= 1):
            raise ValueError(f"keep_elites must be a number in [0, 1], got {self.keep_elites!r}")

    @property
    def kept(self) -> int:
        """Elites carried into the next iteration (at most samples - 1: the mean is sample 0)."""
        return min(round(self.keep_elites * self.elites), self.samples - 1)

    def resized(self, samples: int) -> CEMConfig:
        """The same search with ``samples`` candidates; the best tenth (at least 1) are elites."""
        return replace(self, samples=samples, elites=_tenth(samples))


@dataclass(frozen=True)
class MPPIConfig:
    """MPPI as TD-MPC2 runs it: elites weighted by ``exp(-(c - c_min) / (temperature * spread))``.

    ``spread`` is the elites' cost range, which makes the temperature independent
    of the cost's scale. The mean is refit without momentum.
    """

    horizon: int = 5
    """Planning steps H."""
    samples: int = 512
    """Action sequences drawn per iteration and request."""
    elites: int = 64
    """Lowest-cost samples that are weighted into the new mean and std."""
    temperature: float = 0.5
    """Softness of the elite weights (larger: closer to a plain elite mean)."""
    init_std: float = 2.0
    """Initial std in normalised action space for a cold start (TD-MPC2's max_std)."""
    warm_init_std: float = 0.3
    """Initial std around a warm-start plan."""
    min_std: float = 0.05
    """Floor of the std (TD-MPC2's min_std)."""
    max_std: float = 2.0
    """Ceiling of the std."""
    objective: ObjectiveConfig = ObjectiveConfig()
    """The task cost."""

    def __post_init__(self) -> None:
        _positive_int("horizon", self.horizon)
        _positive_int("samples", self.samples)
        _positive_int("elites", self.elites)
        if self.elites > self.samples:
            raise ValueError(f"elites ({self.elites}) must be <= samples ({self.samples})")
        _positive("temperature", self.temperature)
        _positive("init_std", self.init_std)
        _positive("warm_init_std", self.warm_init_std)
        _non_negative("min_std", self.min_std)
        _positive("max_std", self.max_std)
        if self.min_std > self.max_std:
            raise ValueError(f"min_std ({self.min_std}) must be <= max_std ({self.max_std})")

    def resized(self, samples: int) -> MPPIConfig:
        """The same search with ``samples`` candidates; the best tenth (at least 1) are elites."""
        return replace(self, samples=samples, elites=_tenth(samples))


@dataclass(frozen=True)
class GradientConfig:
    """Adam on the action sequence through the differentiable rollout.

    Actions are kept inside the guardrail box by a tanh reparameterisation and
    inside the largest step by a differentiable radial projection; ``restarts``
    sequences are optimised side by side in one batch and the best one wins.
    """

    horizon: int = 5
    """Planning steps H."""
    restarts: int = 8
    """Sequences optimised in parallel per request (one of them is the warm start, if any)."""
    lr: float = 0.03
    """Adam step size in the unconstrained (pre-tanh) space."""
    warm_lr: float = 0.003
    """Initial step size of the restart that starts at a warm start (it is close already)."""
    lr_decay: float = 0.5
    """Step size multiplier of a restart whose cost went up (Adam alone circles the optimum)."""
    lr_growth: float = 1.1
    """Step size multiplier of a restart whose cost went down (capped at ``lr``)."""
    beta1: float = 0.9
    """Adam first-moment decay."""
    beta2: float = 0.99
    """Adam second-moment decay."""
    eps: float = 1e-8
    """Adam denominator guard."""
    init_std: float = 1.0
    """Std of the random restarts in normalised action space."""
    objective: ObjectiveConfig = ObjectiveConfig()
    """The task cost."""

    def __post_init__(self) -> None:
        _positive_int("horizon", self.horizon)
        _positive_int("restarts", self.restarts)
        _positive("lr", self.lr)
        _positive("warm_lr", self.warm_lr)
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay!r}")
        if not (math.isfinite(self.lr_growth) and self.lr_growth >= 1):
            raise ValueError(f"lr_growth must be >= 1, got {self.lr_growth!r}")
        for name, beta in (("beta1", self.beta1), ("beta2", self.beta2)):
            if not 0 <= beta < 1:
                raise ValueError(f"{name} must be in [0, 1), got {beta!r}")
        _positive("eps", self.eps)
        _positive("init_std", self.init_std)


OptimiserConfig = CEMConfig | MPPIConfig | GradientConfig
