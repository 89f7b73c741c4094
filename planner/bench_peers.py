"""``worldplan bench planner --model bundle``: our optimisers and their peers on push-T.

One run, one model, one fixed set of (observation, goal) latent pairs. A pair is
built from push-T renders: the env is reset with seed ``seed + i`` (the
observation), then a scripted policy pushes for ``goal_steps`` env steps (the
goal); both frames are encoded with the model's encoder. Every method plans on
every pair and its returned plan is scored here by the same function (the
latent objective of the plan's rollout, MSE over the last imagined frame), so
the costs compare like with like whatever each method reports itself.

The methods:
* ours: :func:`planner.api.plan_batch` with CEM, gradient and MPPI, one request
  per call (``cold``) and all pairs in one call (``batched``, time per plan).
* DINO-WM: :func:`dinowm_cem`, a re-implementation of the loop of
  ``gaoyuezhou/dino_wm`` ``planning/cem.py`` as its code defines it (see there).
* stable-worldmodel: ``CEMSolver``, ``MPPISolver`` and ``GradientSolver`` from
  PyPI ``stable-worldmodel`` in a benchmark-only venv (reused from
  :mod:`sims.bench`), driven through its ``Costable`` protocol by
  :mod:`planner._swm_peer`, which loads the same weights from a bundle saved here.

Sampling methods share horizon, samples, elites and iterations; gradient methods
share restarts and steps. Everything else is each method's own default.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from planner.api import plan_batch
from planner.config import (
    Budget,
    CEMConfig,
    GradientConfig,
    MPPIConfig,
    ObjectiveConfig,
    OptimiserConfig,
)
from planner.guardrails import guardrails_for
from planner.objective import latent_cost
from planner.types import Plan, PlanRequest
from world_model.model import WorldModel
from world_model.types import Latent, LatentModel

logger = logging.getLogger(__name__)

ENV_ID = "worldplan/PushT-v0"
DEFAULT_BUNDLE = Path("models/pusht")
PEER_SCRIPT = Path(__file__).with_name("_swm_peer.py")
REPO_ROOT = Path(__file__).resolve().parent.parent
SWM_VENV = "stable-worldmodel"
#: Packages the peer script needs besides the peer's own (``world_model`` imports them).
PEER_EXTRAS = ("safetensors>=0.4", "einops>=0.8")
#: Probe labels of a push-T bundle (``world_model.data`` derives them from the env state).
PUSHT_PROBE_LABELS = (
    "agent_x",
    "agent_y",
    "block_x",
    "block_y",
    "block_angle_cos",
    "block_angle_sin",
)
OURS = ("cem", "gradient", "mppi")
#: Std of the re-drawn output layers of the random-init fallback model.
OUTPUT_INIT_STD = 0.02
#: A plan breaks a hard guardrail when it exceeds a bound by more than this (env units).
BOUND_TOLERANCE = 1e-4
Scores = tuple[list[float | None], list[float | None], list[float | None]]
"""Per plan: executed cost, the plan's own (raw) cost, guardrail excess."""
Progress = Callable[[Iterator[Any], int], Iterator[Any]]


@dataclass(frozen=True)
class PushTBenchConfig:
    """Settings of one push-T planner benchmark (validated on construction)."""

    bundle: Path = DEFAULT_BUNDLE
    pairs: int = 4
    seed: int = 0
    goal_steps: int = 25
    horizon: int = 5
    samples: int = 300
    elites: int = 30
    iterations: int = 30
    grad_iterations: int = 100
    restarts: int = 8
    optimisers: tuple[str, ...] = OURS
    batched: bool = True
    dinowm: bool = True
    peers: bool = True
    threads: int = 1
    venv_dir: Path = Path("artifacts/bench-venvs")
    torch_spec: str = "torch==2.13.0"
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)

    def __post_init__(self) -> None:
        for name in (
            "pairs",
            "goal_steps",
            "horizon",
            "samples",
            "elites",
            "iterations",
            "grad_iterations",
            "restarts",
            "threads",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.elites > self.samples:
            raise ValueError(f"elites ({self.elites}) must be <= samples ({self.samples})")
        unknown = [o for o in self.optimisers if o not in OURS]
        if unknown:
            raise ValueError(f"optimisers must be among {list(OURS)}, got {unknown}")


@dataclass(frozen=True)
class Pair:
    """One (observation, goal) problem: latents (1, 1, ...) and what the env says about them."""

    seed: int
    obs: Latent
    goal: Latent
    agent_block_px: float
    block_moved_px: float


# --- the model ---------------------------------------------------------------------------


def random_pusht_model(**overrides: Any) -> WorldModel:
    """A randomly initialised model shaped as the push-T recipe trains it (seeded).

    Sizes, history and frameskip are those of ``RECIPES["pusht"].train`` (``overrides``
    replace fields of it, for tests); the offline default encoder is attached, as
    ``make models`` uses it. Normalisation: actions N(0, 0.3) per entry, proprio and
    state in px around the workspace centre; the state std is floored so that the
    untrained probe reports the centre (no guardrail penalty from random probe output).
    The predictor's output layers, which start at zero (copy the last frame, whatever the
    actions), are re-drawn from N(0, :data:`OUTPUT_INIT_STD`), so that plans differ in cost.
    """
    from world_model.encoders import OFFLINE_DEFAULT, load_encoder  # noqa: PLC0415
    from world_model.heads import DecoderConfig, ProbeConfig  # noqa: PLC0415
    from world_model.model import ModelSpec, NormStats  # noqa: PLC0415
    from world_model.predictor import PredictorConfig  # noqa: PLC0415
    from world_model.recipes import RECIPES  # noqa: PLC0415

    recipe = RECIPES["pusht"]
    cfg = replace(recipe.train, **overrides)
    enc = load_encoder(OFFLINE_DEFAULT)
    spec = ModelSpec(
        env_id=ENV_ID,
        frameskip=cfg.frameskip,
        env_action_dim=2,
        history=cfg.history,
        image_size=recipe.image_size,
        state_labels=PUSHT_PROBE_LABELS,
        encoder_id=enc.encoder_id,
        encoder_sha256=enc.weights_sha256,
        encoder_provenance=enc.provenance,
        env_options={k: str(v) for k, v in recipe.env_kwargs.items()},
    )
    n, d, p = enc.num_patches, enc.embed_dim, 4
    pred = PredictorConfig(
        num_patches=n,
        embed_dim=d,
        action_dim=spec.action_dim,
        proprio_dim=p,
        history=cfg.history,
        depth=cfg.depth,
        heads=cfg.heads,
        width=cfg.width,
        mlp_dim=cfg.mlp_dim,
        dropout=cfg.dropout,
        merge=cfg.merge,
    )
    a, s = spec.action_dim, len(PUSHT_PROBE_LABELS)
    stats = NormStats(
        action_mean=torch.zeros(a),
        action_std=torch.full((a,), 0.3),
        proprio_mean=torch.tensor([256.0, 256.0, 0.0, 0.0]),
        proprio_std=torch.tensor([100.0, 100.0, 50.0, 50.0]),
        state_mean=torch.tensor([256.0, 256.0, 256.0, 256.0, 0.0, 0.0]),
        state_std=torch.full((s,), 1e-6),
    )
    torch.manual_seed(cfg.seed)
    probe = ProbeConfig(n, d, p, s)
    model = WorldModel(
        spec,
        pred,
        probe,
        DecoderConfig(n, d, image_size=cfg.decoder_size),
        stats=stats,
        encoder=enc,
    )
    with torch.no_grad():  # a residual predictor starts at copy-last-frame: make actions matter
        for layer in (model.predictor.visual_out, model.predictor.proprio_out):
            if layer is not None:
                torch.nn.init.normal_(layer.weight, std=OUTPUT_INIT_STD)
    return model.eval()


def load_model(bundle: Path) -> tuple[WorldModel, dict[str, Any]]:
    """The bundle at ``bundle``, or (when there is none) :func:`random_pusht_model`.

    Returns:
        The model (eval mode) and a description: ``kind`` is ``"bundle"`` or
        ``"random-init"``, ``label`` is what the table prints.
    """
    from world_model.bundle import load_bundle  # noqa: PLC0415

    if (bundle / "bundle.json").is_file():
        model = load_bundle(bundle, env_id=ENV_ID)
        label = f"push-T bundle {bundle} (encoder {model.spec.encoder_id})"
        return model, {"kind": "bundle", "path": str(bundle), "label": label}
    model = random_pusht_model()
    label = (
        f"RANDOM-INIT push-T-shaped model (no bundle at {bundle}; recipe 'pusht' sizes, "
        f"encoder {model.spec.encoder_id}, output layers N(0, {OUTPUT_INIT_STD})): timings are "
        "representative, costs only show that each method optimises something"
    )
    return model, {"kind": "random-init", "path": None, "label": label}


# --- the problems --------------------------------------------------------------------------


def make_pairs(model: WorldModel, count: int, seed: int, goal_steps: int) -> list[Pair]:
    """``count`` pairs: reset with ``seed + i``; goal = after ``goal_steps`` scripted steps."""
    import gymnasium as gym  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    import sims  # noqa: F401, PLC0415 - registers the envs
    from sims.policies import make_policy  # noqa: PLC0415

    env = gym.make(ENV_ID, image_size=model.spec.image_size, terminate_on_success=False)
    pairs: list[Pair] = []
    try:
        for i in range(count):
            obs, info = env.reset(seed=seed + i)
            first, start = obs, np.asarray(info["state"])
            policy = make_policy(env, "scripted", seed=seed + i)
            for _ in range(goal_steps):
                obs, _, _, _, info = env.step(policy(obs, info))
            end = np.asarray(info["state"])
            pairs.append(
                Pair(
                    seed=seed + i,
                    obs=_encode(model, first),
                    goal=_encode(model, obs),
                    agent_block_px=float(np.linalg.norm(start[:2] - start[2:4])),
                    block_moved_px=float(np.linalg.norm(end[2:4] - start[2:4])),
                )
            )
    finally:
        env.close()
    return pairs


def _encode(model: WorldModel, obs: dict[str, Any]) -> Latent:
    images = torch.as_tensor(obs["pixels"])[None, None]  # (1, 1, H, W, 3)
    proprio = torch.as_tensor(obs["proprio"], dtype=torch.float32)[None, None]  # (1, 1, P)
    return model.encode_images(images, proprio)


@torch.no_grad()
def score(model: LatentModel, pair: Pair, actions: Tensor, objective: ObjectiveConfig) -> float:
    """The latent objective of ``actions`` (H, A) env units from ``pair``: one scorer for all."""
    pred = model.rollout(pair.obs, actions[None].to(pair.obs.visual))
    return float(latent_cost(objective, pred, pair.goal)[0])


# --- DINO-WM's loop ----------------------------------------------------------------------


@torch.no_grad()
def dinowm_cem(
    model: LatentModel,
    pair: Pair,
    *,
    horizon: int,
    samples: int,
    topk: int,
    steps: int,
    objective: ObjectiveConfig,
    generator: torch.Generator,
) -> Tensor:
    """DINO-WM's CEM for one instance; returns the final mean (H, A) in env units.

    A re-implementation of the algorithm of ``gaoyuezhou/dino_wm``
    ``planning/cem.py`` (``CEMPlanner.plan``) from its description, not its code:
    in normalised action space, start at mean 0 and std 1 (no warm start); each
    step draw ``samples`` sequences from N(mean, std), replace the first with the
    mean, roll all out from the observation, score them with the objective, and
    refit mean and std (torch's default, unbiased) to the ``topk`` cheapest. No
    clamping, no early stop; the answer is the mean. DINO-WM loops over instances
    one by one; so does the caller. Its ``wm.rollout`` also re-encodes the
    ``samples`` repeated observation images on every call, which this version,
    working on latents, does not do (it flatters DINO-WM's time).
    """
    a, like = model.action_dim, pair.obs.visual
    mean, std = model.action_mean.to(like), model.action_std.to(like)  # (A,) env units
    mu = torch.zeros(horizon, a, dtype=like.dtype, device=like.device)  # (H, A) normalised
    sigma = torch.ones_like(mu)  # (H, A)
    for _ in range(steps):
        noise = torch.randn(samples, horizon, a, generator=generator, device=like.device)
        x = noise * sigma + mu  # (S, H, A)
        x[0] = mu
        pred = model.rollout(pair.obs, x * std + mean)  # (S, H, ...)
        loss = latent_cost(objective, pred, pair.goal)  # (S,)
        elites = x[torch.topk(loss, topk, largest=False).indices]  # (K, H, A)
        mu, sigma = elites.mean(dim=0), elites.std(dim=0)
    return mu * std + mean


# --- our optimisers ------------------------------------------------------------------------


def our_config(name: str, cfg: PushTBenchConfig) -> tuple[OptimiserConfig, int]:
    """Our optimiser ``name`` with the shared settings, and its iteration budget."""
    obj, h = cfg.objective, cfg.horizon
    if name == "cem":
        return CEMConfig(horizon=h, samples=cfg.samples, elites=cfg.elites, objective=obj), (
            cfg.iterations
        )
    if name == "mppi":
        return MPPIConfig(horizon=h, samples=cfg.samples, elites=cfg.elites, objective=obj), (
            cfg.iterations
        )
    return GradientConfig(horizon=h, restarts=cfg.restarts, objective=obj), cfg.grad_iterations


def _requests(pairs: list[Pair], iterations: int, first: int = 0) -> list[PlanRequest]:
    """Requests for ``pairs``; pair ``j`` of the list is problem ``first + j`` (its seed)."""
    rails = guardrails_for(ENV_ID)
    budget = Budget(max_iterations=iterations)
    return [PlanRequest(p.obs, p.goal, rails, budget, seed=first + j) for j, p in enumerate(pairs)]


def _clock() -> tuple[float, float]:
    """Wall-clock and process CPU time now (s)."""
    return time.perf_counter(), time.process_time()


def _since(t0: tuple[float, float], per: int = 1) -> dict[str, float]:
    """Wall ``ms`` and process ``cpu_ms`` since ``t0``, divided by ``per`` plans."""
    wall, cpu = _clock()
    return {"ms": (wall - t0[0]) * 1e3 / per, "cpu_ms": (cpu - t0[1]) * 1e3 / per}


def _plan_record(result: object, times: dict[str, float]) -> dict[str, Any]:
    if isinstance(result, Plan):
        return {**times, "actions": result.actions, "iterations": result.iterations}
    return {**times, "actions": None, "refused": str(getattr(result, "reason", result))}


def run_ours(  # noqa: PLR0917 - the benchmark's coordinates, all needed
    model: WorldModel,
    pairs: list[Pair],
    name: str,
    cfg: PushTBenchConfig,
    batched: bool,
    first: int = 0,
) -> list[dict[str, Any]]:
    """Plan every pair with our optimiser ``name``: one call each, or all in one call.

    ``pairs`` are problems ``first, first + 1, ...`` (their seeds).
    """
    config, iterations = our_config(name, cfg)
    reqs = _requests(pairs, iterations, first)
    if batched:
        t0 = _clock()
        results = plan_batch(model, reqs, config)
        per = _since(t0, len(reqs))
        return [_plan_record(r, per) for r in results]
    out = []
    for req in reqs:
        t0 = _clock()
        (result,) = plan_batch(model, [req], config)
        out.append(_plan_record(result, _since(t0)))
    return out


def run_dinowm(
    model: WorldModel, pairs: list[Pair], cfg: PushTBenchConfig, first: int = 0
) -> list[dict[str, Any]]:
    """DINO-WM's loop, instance by instance (one seeded generator per problem)."""
    out = []
    for j, pair in enumerate(pairs):
        gen = torch.Generator(device=model.device).manual_seed(cfg.seed + first + j)
        t0 = _clock()
        actions = dinowm_cem(
            model,
            pair,
            horizon=cfg.horizon,
            samples=cfg.samples,
            topk=cfg.elites,
            steps=cfg.iterations,
            objective=cfg.objective,
            generator=gen,
        )
        out.append({**_since(t0), "actions": actions})
    return out


# --- stable-worldmodel, in its own venv ------------------------------------------------------


def swm_python(cfg: PushTBenchConfig) -> Path:
    """The interpreter of the stable-worldmodel venv (built by :mod:`sims.bench` if needed).

    The peer script imports ``world_model`` from this repository; what that needs and the
    peer venv lacks (:data:`PEER_EXTRAS`) is installed into it, held to the venv's torch.
    """
    from sims.bench import PEER_VENVS, PeerError, ensure_peer_venv  # noqa: PLC0415

    python = ensure_peer_venv(PEER_VENVS[SWM_VENV], cfg.venv_dir, cfg.torch_spec)
    probe = "import safetensors, einops"
    if subprocess.run([str(python), "-c", probe], capture_output=True, check=False).returncode:
        venv = python.parent.parent
        cmd = [
            "nice",
            "-n",
            "10",
            str(python),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "-c",
            str(venv / "constraints.txt"),
            *PEER_EXTRAS,
        ]
        logger.info("%s: installing %s", SWM_VENV, " ".join(PEER_EXTRAS))
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode:
            raise PeerError(f"installing {PEER_EXTRAS} into {venv} failed:\n{done.stdout[-2000:]}")
    return python


def _peer_env(threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    return env


def peer_command(python: Path, folder: Path, cfg: PushTBenchConfig) -> list[str]:
    """The command line that runs :mod:`planner._swm_peer` on the files in ``folder``."""
    cmd = [
        str(python),
        "-P",
        str(PEER_SCRIPT),
        "--bundle",
        str(folder / "bundle"),
        "--pairs",
        str(folder / "pairs.safetensors"),
    ]
    for name in (
        "samples",
        "elites",
        "iterations",
        "grad_iterations",
        "restarts",
        "horizon",
        "threads",
        "seed",
    ):
        cmd += [f"--{name.replace('_', '-')}", str(getattr(cfg, name))]
    return cmd


class SwmPeer:
    """stable-worldmodel's solvers on the same model and pairs, one subprocess per call.

    The model is saved as a bundle and the pairs as safetensors once, in a temporary
    folder that :meth:`close` removes; :meth:`run` solves the pairs it is given.
    """

    def __init__(self, model: WorldModel, pairs: list[Pair], cfg: PushTBenchConfig) -> None:
        from safetensors.torch import save_file  # noqa: PLC0415

        from world_model.bundle import save_bundle  # noqa: PLC0415

        self.cfg = cfg
        self.python = swm_python(cfg)
        self._tmp = tempfile.TemporaryDirectory(prefix="worldplan-bench-")
        self.folder = Path(self._tmp.name)
        save_bundle(model, self.folder / "bundle")
        tensors = {
            "obs_visual": torch.cat([p.obs.visual for p in pairs]),  # (P, 1, N, D)
            "obs_proprio": torch.cat([p.obs.proprio for p in pairs]),  # (P, 1, Pp)
            "goal_visual": torch.cat([p.goal.visual for p in pairs]),  # (P, 1, N, D)
            "goal_proprio": torch.cat([p.goal.proprio for p in pairs]),  # (P, 1, Pp)
        }
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in tensors.items()},
            self.folder / "pairs.safetensors",
        )

    def run(self, indices: list[int]) -> dict[str, Any]:
        """Solve pairs ``indices`` with every solver; the peer script's JSON document."""
        from sims.bench import PeerError  # noqa: PLC0415

        cmd = peer_command(self.python, self.folder, self.cfg)
        cmd += [arg for i in indices for arg in ("--index", str(i))]
        logger.debug("stable-worldmodel: %s", " ".join(cmd))
        done = subprocess.run(
            cmd, capture_output=True, text=True, env=_peer_env(self.cfg.threads), check=False
        )
        if done.returncode != 0:
            tail = "\n".join(done.stderr.splitlines()[-15:])
            raise PeerError(f"stable-worldmodel solvers exited {done.returncode}:\n{tail}")
        try:
            doc: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        except (json.JSONDecodeError, IndexError) as exc:
            raise PeerError(f"stable-worldmodel printed no JSON: {done.stdout[-500:]!r}") from exc
        return doc

    def close(self) -> None:
        """Remove the temporary folder."""
        self._tmp.cleanup()


# --- where the time goes ---------------------------------------------------------------------


def _median_ms(fn: Callable[[], object], repeats: int = 3) -> float:
    """Median process CPU ms of ``fn`` (steadier than wall-clock on a shared machine)."""
    times = []
    for _ in range(repeats):
        t0 = _clock()
        fn()
        times.append(_since(t0)["cpu_ms"])
    return statistics.median(times)


def profile_model(model: WorldModel, pair: Pair, cfg: PushTBenchConfig) -> dict[str, float]:
    """Time of the model work of one iteration (ms, median of 3).

    ``eval_ms``: a scored rollout of ``samples`` sequences (one sampling iteration);
    ``grad_step_ms``: forward + backward of ``restarts`` sequences (one gradient step);
    ``probe_ms``: the state probe on the ``samples`` x ``horizon`` imagined frames, which
    only our planner runs (its guardrails penalise imagined states).
    """
    obj = cfg.objective
    base = model.action_mean.expand(cfg.samples, cfg.horizon, -1).clone()  # (S, H, A)
    with torch.no_grad():
        imagined = model.rollout(pair.obs, base)  # (S, H, ...)

    def sampled() -> None:
        with torch.no_grad():
            latent_cost(obj, model.rollout(pair.obs, base), pair.goal)

    def gradient() -> None:
        x = base[: cfg.restarts].clone().requires_grad_(True)  # (K, H, A)
        torch.autograd.grad(latent_cost(obj, model.rollout(pair.obs, x), pair.goal).sum(), x)

    def probe() -> None:
        with torch.no_grad():
            model.probe(imagined)

    return {
        "eval_ms": _median_ms(sampled),
        "grad_step_ms": _median_ms(gradient),
        "probe_ms": _median_ms(probe),
    }


# --- rows, the run and the table -------------------------------------------------------------


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def make_row(
    ident: dict[str, str],
    records: list[dict[str, Any]],
    scores: Scores,
    model_ms: float | None,
) -> dict[str, Any]:
    """One table row: p50/p95 of time per plan, final costs, and the share spent in the model.

    ``cost_*`` are the costs of the plans as the env executes them (clipped to its action
    box), ``raw_cost_mean`` the mean of the plans' own costs, ``out_of_bounds`` the number
    of plans that break the hard guardrails (action box or largest step) before clipping.
    """
    costs, raw, excess = scores
    ms = [float(r["ms"]) for r in records]
    cpu = [float(r["cpu_ms"]) for r in records]
    ok = [c for c in costs if c is not None]
    p50 = _quantile(cpu, 0.5)
    return {
        **ident,
        "plans": len(records),
        "refused": len(records) - len(ok),
        "ms_p50": _quantile(ms, 0.5),
        "ms_p95": _quantile(ms, 0.95),
        "cpu_ms_p50": p50,
        "cpu_ms_p95": _quantile(cpu, 0.95),
        "cost_p50": _quantile(ok, 0.5),
        "cost_mean": statistics.fmean(ok) if ok else None,
        "costs": costs,
        "raw_cost_mean": statistics.fmean(r for r in raw if r is not None) if ok else None,
        "out_of_bounds": sum(e > BOUND_TOLERANCE for e in excess if e is not None),
        "max_excess": max((e for e in excess if e is not None), default=None),
        "ms": ms,
        "cpu_ms": cpu,
        "model_ms_est": model_ms,
        "model_share": model_ms / p50 if model_ms is not None and p50 else None,
    }


def executed(actions: Tensor, frameskip: int) -> tuple[Tensor, float]:
    """A plan (H, A) as push-T executes it, and how far it breaks the hard guardrails.

    The env clips each env action to its box; the guardrails also bound each env
    action's length (the pusher's speed). Returns the clipped plan and the largest
    excess (0 when the plan respects both).
    """
    rails = guardrails_for(ENV_ID)
    low = torch.tensor(rails.action_low, dtype=actions.dtype).repeat(frameskip)  # (A,)
    high = torch.tensor(rails.action_high, dtype=actions.dtype).repeat(frameskip)  # (A,)
    env = actions.reshape(-1, len(rails.action_low))  # (H * fs, env_A)
    over_box = torch.maximum(actions - high, low - actions).clamp_min(0).max()
    over_step = (env.norm(dim=-1) - rails.max_step).clamp_min(0).max()
    return torch.minimum(torch.maximum(actions, low), high), float(max(over_box, over_step))


def _score_all(
    model: WorldModel, pairs: list[Pair], records: list[dict[str, Any]], objective: ObjectiveConfig
) -> Scores:
    """Executed cost, raw cost and guardrail excess of every record's plan (None if refused)."""
    costs: list[float | None] = []
    raw: list[float | None] = []
    excess: list[float | None] = []
    for pair, rec in zip(pairs, records, strict=True):
        if rec.get("actions") is None:
            costs.append(None)
            raw.append(None)
            excess.append(None)
            continue
        plan = torch.as_tensor(rec["actions"]).float().cpu()
        clipped, over = executed(plan, model.frameskip)
        costs.append(score(model, pair, clipped, objective))
        raw.append(score(model, pair, plan, objective))
        excess.append(over)
    return costs, raw, excess


def _settings(cfg: PushTBenchConfig, kind: str) -> str:
    if kind == "gradient":
        return f"H{cfg.horizon} x{cfg.restarts} restarts x{cfg.grad_iterations} steps"
    return f"H{cfg.horizon} {cfg.samples} samples top {cfg.elites} x{cfg.iterations}"


Task = tuple[dict[str, str], Callable[[int], list[dict[str, Any]]], float]
"""A method to time: its identity, ``fn(i)`` planning pair ``i`` (or all), its model ms."""


def _tasks(
    model: WorldModel, pairs: list[Pair], cfg: PushTBenchConfig, prof: dict[str, float]
) -> tuple[list[Task], list[Task]]:
    """The in-process methods: per-pair ones (run in rounds) and batched ones (all pairs)."""
    sample_ms = prof["eval_ms"] * cfg.iterations
    grad_ms = prof["grad_step_ms"] * cfg.grad_iterations
    per_pair: list[Task] = []
    batched: list[Task] = []
    for mode in ("cold", "batched") if cfg.batched else ("cold",):
        for name in cfg.optimisers:
            kind = "gradient" if name == "gradient" else "sampling"
            ident = {"group": "ours", "method": name, "mode": mode}
            ident["settings"] = _settings(cfg, kind)
            model_ms = grad_ms if kind == "gradient" else sample_ms
            if mode == "cold":
                fn = partial(_one, partial(run_ours, model, name=name, cfg=cfg, batched=False))
                per_pair.append((ident, partial(fn, pairs), model_ms))
            else:
                batched.append((ident, partial(_all, model, pairs, name, cfg), model_ms))
    if cfg.dinowm:
        ident = {"group": "DINO-WM", "method": "cem (per-instance loop)", "mode": "cold"}
        ident["settings"] = _settings(cfg, "sampling")
        fn = partial(_one, partial(run_dinowm, model, cfg=cfg))
        per_pair.append((ident, partial(fn, pairs), sample_ms))
    return per_pair, batched


def _all(
    model: WorldModel, pairs: list[Pair], name: str, cfg: PushTBenchConfig, _i: int
) -> list[dict[str, Any]]:
    """Our optimiser ``name`` on all pairs in one call (``_i`` is ignored)."""
    return run_ours(model, pairs, name, cfg, batched=True)


def _one(
    runner: Callable[..., list[dict[str, Any]]], pairs: list[Pair], i: int
) -> list[dict[str, Any]]:
    """Run ``runner`` on pair ``i`` alone (as problem ``i``)."""
    return runner(pairs=[pairs[i]], first=i)


_SWM_NAMES = {"cem": "CEMSolver", "mppi": "MPPISolver", "gd": "GradientSolver"}


def _swm_rows(
    model: WorldModel,
    pairs: list[Pair],
    cfg: PushTBenchConfig,
    prof: dict[str, float],
    solvers: dict[str, list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    rows = []
    for name, records in solvers.items():
        if len(records) != len(pairs):
            continue
        kind = "gradient" if name == "gd" else "sampling"
        model_ms = (
            prof["grad_step_ms"] * cfg.grad_iterations
            if kind == "gradient"
            else (prof["eval_ms"] * cfg.iterations)
        )
        ident = {
            "group": "stable-worldmodel",
            "method": _SWM_NAMES[name],
            "mode": "cold",
            "settings": _settings(cfg, kind),
        }
        costs = _score_all(model, pairs, records, cfg.objective)
        rows.append(make_row(ident, records, costs, model_ms))
    return rows


def _run_methods(
    model: WorldModel,
    pairs: list[Pair],
    cfg: PushTBenchConfig,
    prof: dict[str, float],
    progress: Progress,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Time every method in interleaved rounds, then the batched runs.

    Round ``i`` runs each method on pair ``i`` in turn, so that a change of the
    machine's load hits all methods alike.

    Returns:
        The rows, and the peer's versions (or the error that stopped it).
    """
    per_pair, batched = _tasks(model, pairs, cfg, prof)
    records: list[list[dict[str, Any]]] = [[] for _ in per_pair]
    swm, peer = _start_peer(model, pairs, cfg)
    solvers: dict[str, list[dict[str, Any]]] = {}
    units = [(i, k) for i in range(len(pairs)) for k in range(len(per_pair) + 1)]
    for i, k in progress(iter(units), len(units)):
        if k < len(per_pair):
            records[k] += per_pair[k][1](i)
        elif swm is not None:
            swm, peer = _peer_round(swm, i, solvers)
    rows = []
    for (ident, _, model_ms), recs in zip(per_pair, records, strict=True):
        rows.append(make_row(ident, recs, _score_all(model, pairs, recs, cfg.objective), model_ms))
    for ident, fn, model_ms in progress(iter(batched), len(batched)):
        recs = fn(0)
        rows.append(make_row(ident, recs, _score_all(model, pairs, recs, cfg.objective), model_ms))
    if swm is not None:
        swm.close()
    return rows + _swm_rows(model, pairs, cfg, prof, solvers), peer


def run_pusht(cfg: PushTBenchConfig, progress: Progress) -> dict[str, Any]:
    """Benchmark every method on the push-T model; a JSON-ready dict (see :func:`format_table`)."""
    load_before = os.getloadavg()
    model, described = load_model(cfg.bundle)
    pairs = make_pairs(model, cfg.pairs, cfg.seed, cfg.goal_steps)
    idle = model.action_mean.expand(cfg.horizon, -1)
    idle_records: list[dict[str, Any]] = [
        {"ms": 0.0, "cpu_ms": 0.0, "actions": idle} for _ in pairs
    ]
    baseline = _score_all(model, pairs, idle_records, cfg.objective)
    prof = profile_model(model, pairs[0], cfg)  # also warms the model up
    rows = [
        make_row(
            {"group": "-", "method": "no planning (mean action)", "mode": "-", "settings": "-"},
            idle_records,
            baseline,
            None,
        )
    ]
    more, peer = _run_methods(model, pairs, cfg, prof, progress)
    rows += more
    return {
        "model": described,
        "pairs": [
            {"seed": p.seed, "agent_block_px": p.agent_block_px, "block_moved_px": p.block_moved_px}
            for p in pairs
        ],
        "config": {
            k: str(v) if isinstance(v, Path) else v
            for k, v in cfg.__dict__.items()
            if k != "objective"
        },
        "objective": cfg.objective.__dict__,
        "profile": prof,
        "torch_threads": torch.get_num_threads(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "stable_worldmodel": peer,
        "rows": rows,
        "verdict": verdict(rows),
    }


def _start_peer(
    model: WorldModel, pairs: list[Pair], cfg: PushTBenchConfig
) -> tuple[SwmPeer | None, dict[str, Any]]:
    """The stable-worldmodel peer, or None and the error that stopped it."""
    from sims.bench import PeerError  # noqa: PLC0415

    if not cfg.peers:
        return None, {}
    try:
        return SwmPeer(model, pairs, cfg), {}
    except (PeerError, OSError, subprocess.SubprocessError) as exc:
        logger.error("stable-worldmodel peer failed: %s", exc)
        return None, {"error": str(exc)}


def _peer_round(
    swm: SwmPeer, i: int, solvers: dict[str, list[dict[str, Any]]]
) -> tuple[SwmPeer | None, dict[str, Any]]:
    """Run the peer on pair ``i`` and add its records; on failure, close it and say why."""
    from sims.bench import PeerError  # noqa: PLC0415

    try:
        doc = swm.run([i])
    except (PeerError, OSError, subprocess.SubprocessError) as exc:
        logger.error("stable-worldmodel peer failed: %s", exc)
        swm.close()
        return None, {"error": str(exc)}
    for name, recs in doc["solvers"].items():
        solvers.setdefault(name, []).extend(recs)
    return swm, {"versions": doc.get("versions", {})}


def _find(rows: list[dict[str, Any]], group: str, method: str) -> dict[str, Any] | None:
    return next((r for r in rows if r["group"] == group and r["method"] == method), None)


def _ratio(num: float | None, den: float | None) -> float | None:
    return num / den if num is not None and den else None


def verdict(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per row of ours: speed-ups and cost checks against the peers.

    ``speedup_vs_*`` is the peer's p50 CPU time per plan over ours (DINO-WM's loop, and
    the matching stable-worldmodel solver), ``wall_speedup_vs_*`` the same in wall-clock
    time; ``cost_le_*`` says whether our mean final cost is equal or lower.
    """
    dino = _find(rows, "DINO-WM", "cem (per-instance loop)")
    match = {"cem": "CEMSolver", "mppi": "MPPISolver", "gradient": "GradientSolver"}
    out = []
    for r in rows:
        if r["group"] != "ours":
            continue
        entry: dict[str, Any] = {"method": r["method"], "mode": r["mode"]}
        for key, peer in (
            ("dinowm", dino),
            ("swm", _find(rows, "stable-worldmodel", match[r["method"]])),
        ):
            if peer is None:
                continue
            speedup = _ratio(peer["cpu_ms_p50"], r["cpu_ms_p50"])
            cost_ok = (
                r["cost_mean"] is not None
                and peer["cost_mean"] is not None
                and r["cost_mean"] <= peer["cost_mean"]
            )
            entry[f"speedup_vs_{key}"] = speedup
            entry[f"wall_speedup_vs_{key}"] = _ratio(peer["ms_p50"], r["ms_p50"])
            entry[f"cost_le_{key}"] = cost_ok
        out.append(entry)
    return out


def _fmt(v: object, spec: str) -> str:
    return format(v, spec) if isinstance(v, int | float) else "-"


def format_table(result: dict[str, Any]) -> str:
    """The rows as a plain-text table, with the model's label and the goal checks below."""
    head = (
        f"{'group':<17} {'method':<25} {'mode':<7} {'settings':<34} {'cpu p50':>8} "
        f"{'cpu p95':>8} {'wall p50':>8} {'wall p95':>8} {'cost p50':>9} {'cost mean':>9} "
        f"{'raw mean':>9} {'oob':>3} {'ref':>3} {'model%':>6}"
    )
    lines = [f"model: {result['model']['label']}", head, "-" * len(head)]
    for r in result["rows"]:
        share = r["model_share"]
        lines.append(
            f"{r['group']:<17} {r['method']:<25} {r['mode']:<7} {r['settings']:<34} "
            f"{_fmt(r['cpu_ms_p50'], '8.0f')} {_fmt(r['cpu_ms_p95'], '8.0f')} "
            f"{_fmt(r['ms_p50'], '8.0f')} {_fmt(r['ms_p95'], '8.0f')} "
            f"{_fmt(r['cost_p50'], '9.3e')} {_fmt(r['cost_mean'], '9.3e')} "
            f"{_fmt(r['raw_cost_mean'], '9.3e')} {r['out_of_bounds']:>3} {r['refused']:>3} "
            f"{_fmt(None if share is None else 100 * share, '6.0f')}"
        )
    for v in result["verdict"]:
        parts = [f"{v['method']} {v['mode']}:"]
        for key, name in (("dinowm", "DINO-WM"), ("swm", "stable-worldmodel")):
            if f"speedup_vs_{key}" in v:
                ok = "<=" if v[f"cost_le_{key}"] else ">"
                parts.append(
                    f"{_fmt(v[f'speedup_vs_{key}'], '.2f')}x CPU "
                    f"({_fmt(v[f'wall_speedup_vs_{key}'], '.2f')}x wall) vs {name} "
                    f"(mean cost {ok} theirs);"
                )
        lines.append("  " + "  ".join(parts))
    peer = result["stable_worldmodel"]
    if "error" in peer:
        lines.append(f"stable-worldmodel: not run: {peer['error'].splitlines()[0]}")
    prof = result["profile"]
    lines.append(
        f"profile (CPU ms, one iteration): rollout + objective of the samples "
        f"{prof['eval_ms']:.0f}, state probe on them (ours only) {prof['probe_ms']:.0f}; "
        f"forward + backward of the restarts {prof['grad_step_ms']:.0f}"
    )
    la, lb = result["load_average_before"], result["load_average_after"]
    lines.append(
        f"times: ms per plan (cpu = process CPU time); torch threads "
        f"{result['torch_threads']}; load average {la[0]:.1f} before, {lb[0]:.1f} after; "
        "model% = profiled CPU time of the model calls / cpu p50; cost = latent cost of the "
        "plan as push-T executes it (actions clipped to its box), raw = of the plan as "
        "returned, oob = plans outside the hard guardrails (box or largest step)"
    )
    return "\n".join(lines)
