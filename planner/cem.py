"""The cross-entropy method over action sequences, batched over requests.

Shapes: R requests (R' active), S samples, K elites, H horizon, A planning-action dim.
"""

from __future__ import annotations

import torch
from torch import Tensor

from planner.config import CEMConfig
from planner.problem import Problem


def coloured(white: Tensor, beta: float) -> Tensor:
    """Gaussian noise with power spectral density ``1 / f ** beta`` along the last axis.

    ``white`` (..., T) is standard normal; the answer has the same shape, mean 0 and
    marginal variance exactly 1 (the spectrum is scaled so, as in iCEM, Pinneri et
    al. 2020), but its samples are correlated in time: larger ``beta``, smoother
    sequences. The lowest frequency's power also feeds the constant term, so a
    sequence can drift as a whole. ``beta`` 0 returns ``white`` itself.
    """
    if beta == 0:
        return white
    t = white.shape[-1]
    freqs = torch.fft.rfftfreq(t, dtype=white.dtype, device=white.device)  # (F,)
    freqs[0] = freqs[1] if t > 1 else 1.0
    scale = freqs ** (-beta / 2.0)  # amplitude per frequency
    # rfft(white) / sqrt(t) is white noise in the frequency domain: the constant (and, for
    # even t, the Nyquist) term real with variance 1, the others complex with variance 1.
    # Shaped by ``scale`` and transformed back, each output sample has variance
    # (s_0^2 + 2 sum_mid s_k^2 + [t even] s_nyq^2) / t^2, the same for every step.
    spectrum = torch.fft.rfft(white, dim=-1) / t**0.5
    weights = torch.full_like(scale, 2.0)
    weights[0] = 1.0
    if t % 2 == 0 and t > 1:
        weights[-1] = 1.0
    sigma = (weights * scale.square()).sum().sqrt() / t
    out: Tensor = torch.fft.irfft(spectrum * scale, n=t, dim=-1) / sigma
    return out


def coloured_actions(white: Tensor, beta: float, frameskip: int) -> Tensor:
    """Planning-action noise (..., H, frameskip * a) coloured along the env steps.

    A planning action is ``frameskip`` env actions side by side, so the colour's time
    axis is the ``H * frameskip`` env steps of a sequence, per env-action dim: ``white``
    is standard normal (..., a, H * frameskip), coloured by :func:`coloured` and laid
    out as planning actions.
    """
    *lead, a, t = white.shape
    h = t // frameskip
    eps = coloured(white, beta).reshape(*lead, a, h, frameskip)  # (..., a, H, fs)
    return eps.movedim(-3, -1).reshape(*lead, h, frameskip * a)  # (..., H, fs a)


class GaussianSearch:
    """A diagonal Gaussian per request in normalised action space, shared by CEM and MPPI.

    A cold start is N(0, init_std) (the data's mean action); a warm start is
    centred on the request's ``init`` with ``warm_init_std``.
    """

    def __init__(
        self, problem: Problem, init_std: float, warm_init_std: float, noise_beta: float = 0.0
    ) -> None:
        self.problem = problem
        self.noise_beta = noise_beta
        warm = problem.warm[:, None, None]  # (R, 1, 1)
        self.mean = problem.normalise(problem.init)  # (R, H, A)
        self.std = torch.where(
            warm,
            torch.full_like(self.mean, warm_init_std),
            torch.full_like(self.mean, init_std),
        )  # (R, H, A)

    def sample(self, rows: Tensor, samples: int) -> Tensor:
        """Clamped env-unit samples (R', S, H, A) around the current means, sample 0 = the mean."""
        p = self.problem
        eps = self.noise(rows, samples)  # (R', S, H, A)
        eps[:, 0] = 0.0
        x = self.mean[rows, None] + self.std[rows, None] * eps  # (R', S, H, A)
        return p.clamp(p.denormalise(x), rows)

    def noise(self, rows: Tensor, samples: int) -> Tensor:
        """Unit-variance noise (R', S, H, A): white, or coloured along the env steps."""
        p = self.problem
        h, a = self.mean.shape[1:]
        if self.noise_beta == 0:
            return p.randn(rows, (samples, h, a))
        fs = p.model.frameskip
        white = p.randn(rows, (samples, a // fs, h * fs))  # (R', S, a, H fs)
        return coloured_actions(white, self.noise_beta, fs)

    def candidate(self) -> Tensor:
        """The optimiser's answer for every request: the clamped mean (R, H, A) in env units."""
        rows = torch.arange(self.problem.size, device=self.mean.device)
        return self.problem.clamp(self.problem.denormalise(self.mean)[:, None], rows)[:, 0]


class CEM(GaussianSearch):
    """The cross-entropy method: refit mean and std to the elites each iteration.

    Sample 0 of every iteration is the current mean, so the mean is always scored.
    The answer is the elite mean (as DINO-WM returns it). Two of iCEM's changes are
    options (``CEMConfig.noise_beta``, ``keep_elites``): coloured sampling noise, and
    the best elites carried into the next iteration's samples 1..k.
    """

    name = "cem"

    def __init__(self, config: CEMConfig, problem: Problem) -> None:
        super().__init__(problem, config.init_std, config.warm_init_std, config.noise_beta)
        self.config = config
        self.kept: Tensor | None = None  # (R, k, H, A) normalised, after the first iteration

    @torch.no_grad()
    def step(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        """One iteration for requests ``rows``: the actions (R', S, H, A) and costs (R', S)."""
        c, p = self.config, self.problem
        actions = self.sample(rows, c.samples)
        if self.kept is not None:  # every request is in the first iteration, so all have some
            k = self.kept.shape[1]
            actions[:, 1 : 1 + k] = p.clamp(p.denormalise(self.kept[rows]), rows)
        cost = p.evaluate(actions, rows).cost  # (R', S)
        idx = torch.topk(cost, c.elites, dim=1, largest=False).indices  # (R', K), sorted
        x = p.normalise(actions)  # (R', S, H, A)
        elites = torch.gather(x, 1, idx[:, :, None, None].expand(-1, -1, *x.shape[2:]))
        self.mean[rows] = elites.mean(dim=1)
        self.std[rows] = elites.std(dim=1, unbiased=False).clamp_min(c.min_std)
        if c.kept:
            if self.kept is None:
                self.kept = torch.zeros(
                    p.size, c.kept, *x.shape[2:], dtype=x.dtype, device=x.device
                )
            self.kept[rows] = elites[:, : c.kept]
        return actions, cost
