"""Training: predictor, state probe and decoder on cached encoder features.

One AdamW optimiser updates three parts with three losses that share no gradient:

* the predictor: teacher-forced latent MSE (visual + proprio) of frame ``t + 1`` from
  frames ``<= t`` over a window of ``history`` planning steps, targets detached
  (:meth:`WorldModel.predictor_loss`); with ``rollout_steps = K > 0`` also the MSE of a
  K-step open-loop rollout from the window's first ``history`` frames, the predictor fed
  its own predictions as the planner feeds them, gradients through the whole chain
  (:meth:`WorldModel.rollout_loss`);
* the state probe: MSE on normalised probe targets from detached encoder latents;
* the decoder: pixel MSE on detached latents, for previews only.

Gradients are clipped per part, so the probe's and decoder's losses cannot even rescale
the predictor's step. Batches are drawn with a generator seeded by ``(seed, step)`` and
the global torch RNG (dropout) is saved in every checkpoint, so a resumed run repeats an
uninterrupted one exactly. Checkpoints are folders ``step_XXXXXXX/`` with
``state.safetensors`` (weights, AdamW moments, RNG) and ``state.json`` (step, config,
metrics); no pickles.

Shapes: B batch, H history, N patch tokens, D feature dim, P proprio dim, A planning-action
dim, S probe-state dim.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm import tqdm

from world_model.bundle import load_bundle, save_bundle
from world_model.data import (
    TrainingData,
    WindowDataset,
    compute_stats,
    load_training_data,
    split_episodes,
)
from world_model.heads import DecoderConfig, ProbeConfig
from world_model.model import ModelSpec, NormStats, WorldModel
from world_model.predictor import PredictorConfig
from world_model.types import Latent

log = logging.getLogger(__name__)

_PARTS = ("predictor", "state_probe", "decoder")
CHECKPOINT_STATE = "state.safetensors"
CHECKPOINT_META = "state.json"
#: Env options that shape how episodes were recorded, not the world; kept out of the
#: bundle's ``env_options`` (which describe the world: layout, wall, particle count).
COLLECTION_ONLY = frozenset({"terminate_on_success", "draw_goal", "render_pixels"})
#: Settings a resumed run may change (they do not change what is being optimised).
_RESUMABLE_CHANGES = frozenset({"threads", "checkpoint_every"})


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (the CLI's ``worldplan train`` options)."""

    #: Optimiser steps.
    steps: int = 2000
    #: Windows per batch.
    batch_size: int = 32
    #: Peak AdamW learning rate (DINO-WM: 5e-4).
    lr: float = 5e-4
    #: AdamW weight decay.
    weight_decay: float = 0.01
    #: Linear warm-up steps before the cosine decay to ``lr / 10``.
    warmup: int = 100
    #: Frames of context H (DINO-WM: 3).
    history: int = 3
    #: Env steps per planning step f (DINO-WM: 5).
    frameskip: int = 5
    #: Share of the episodes held out for validation.
    val_fraction: float = 0.1
    #: Validate every this many steps (and at the end).
    val_every: int = 250
    #: Most validation windows used (evenly spaced over the validation split).
    val_windows: int = 512
    #: Write a checkpoint every this many steps and at the end (0: none).
    checkpoint_every: int = 500
    #: Seed of the initialisation, the split and the batch order.
    seed: int = 0
    #: ``torch.set_num_threads`` for the run.
    threads: int = 1
    #: Weight of the proprio MSE next to the visual MSE, each measured relative to its
    #: copy-last-frame baseline on the training windows (so 1.0 weighs a 10% gain on
    #: either the same, whatever the scale of the encoder's features).
    proprio_weight: float = 1.0
    #: Gradient-norm clip, applied to each part separately (0: none).
    grad_clip: float = 1.0
    #: Side of the decoder's preview images.
    decoder_size: int = 64
    #: Transformer blocks of the predictor.
    depth: int = 4
    #: Internal width of the predictor.
    width: int = 128
    #: Attention heads of the predictor.
    heads: int = 4
    #: MLP width of the predictor's blocks.
    mlp_dim: int = 512
    #: Predictor dropout.
    dropout: float = 0.1
    #: Patch merge factor of the predictor (1: one token per patch, as DINO-WM). 2 merges
    #: 2 x 2 patches into one token: 4x fewer tokens, ~5x faster steps on this CPU.
    merge: int = 2
    #: Planning steps K of an open-loop rollout loss added to the teacher-forced one (0:
    #: none, DINO-WM's training). Windows then hold ``history + K`` frames; the rollout
    #: starts from the first ``history`` and is scored on each of the K it imagines. The
    #: planner scores 5-step rollouts, and teacher forcing alone never sees the error that
    #: compounds over them.
    rollout_steps: int = 0
    #: Weight of the rollout loss next to the teacher-forced loss.
    rollout_weight: float = 1.0

    def __post_init__(self) -> None:
        ints = (
            "steps", "batch_size", "history", "frameskip", "val_every", "val_windows",
            "threads", "decoder_size", "depth", "width", "heads", "mlp_dim", "merge",
        )  # fmt: skip
        for name in ints:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive int, got {value!r}")
        for name in ("warmup", "checkpoint_every", "seed", "rollout_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"TrainConfig.{name} must be an int >= 0, got {value!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"TrainConfig.lr must be a positive number, got {self.lr}")
        weights = (self.weight_decay, self.grad_clip, self.proprio_weight, self.rollout_weight)
        if not all(w >= 0 and math.isfinite(w) for w in weights):
            raise ValueError(
                "TrainConfig.weight_decay, grad_clip, proprio_weight, rollout_weight must be "
                "finite and >= 0"
            )
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"TrainConfig.val_fraction must be in [0, 1), got {self.val_fraction}")

    @property
    def window_steps(self) -> int:
        """Planning steps per training window: ``history``, plus ``K - 1`` for a K-step rollout."""
        return self.history + max(0, self.rollout_steps - 1)

    def lr_at(self, step: int) -> float:
        """Learning rate of step ``step``: linear warm-up, then cosine decay to ``lr / 10``."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        span = max(1, self.steps - self.warmup)
        progress = min(1.0, (step - self.warmup) / span)
        return self.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


@dataclass(frozen=True)
class TrainResult:
    """What a run produced."""

    bundle: Path
    metrics: dict[str, float]
    seconds: float
    resumed_from: int


# ----------------------------------------------------------------------------- model
def build_model(data: TrainingData, cfg: TrainConfig, stats: NormStats) -> WorldModel:
    """A freshly initialised (seeded) model sized for ``data``'s encoder cache and ``cfg``."""
    meta, cache = data.meta, data.cache
    n, d = int(cache["num_patches"]), int(cache["embed_dim"])
    p = int(meta["proprio_dim"])
    spec = ModelSpec(
        env_id=meta["env_id"],
        frameskip=cfg.frameskip,
        env_action_dim=int(meta["env_action_dim"]),
        history=cfg.history,
        image_size=int(meta["image_size"]),
        state_labels=data.probe_labels,
        encoder_id=str(cache["encoder_id"]),
        encoder_sha256=str(cache["sha256"]),
        encoder_provenance=str(cache.get("provenance", "")),
        env_options={
            k: str(v) for k, v in meta["env_kwargs_dict"].items() if k not in COLLECTION_ONLY
        },
    )
    pred = PredictorConfig(
        num_patches=n, embed_dim=d, action_dim=spec.action_dim, proprio_dim=p,
        history=cfg.history, depth=cfg.depth, heads=cfg.heads, width=cfg.width,
        mlp_dim=cfg.mlp_dim, dropout=cfg.dropout, merge=cfg.merge,
    )  # fmt: skip
    probe = ProbeConfig(n, d, p, len(data.probe_labels))
    dec = DecoderConfig(n, d, image_size=cfg.decoder_size)
    torch.manual_seed(cfg.seed)
    return WorldModel(spec, pred, probe, dec, stats=stats)


def _parameters(model: WorldModel) -> list[nn.Parameter]:
    """The trained parameters in a fixed order: predictor, probe, decoder."""
    return [p for part in _PARTS for p in getattr(model, part).parameters()]


def make_optimizer(model: WorldModel, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over the predictor, probe and decoder (one parameter group)."""
    return torch.optim.AdamW(_parameters(model), lr=cfg.lr, weight_decay=cfg.weight_decay)


# ----------------------------------------------------------------------------- steps
def batch_indices(seed: int, step: int, size: int, batch: int) -> Tensor:
    """Window indices of step ``step``: a pure function of ``(seed, step)``."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return torch.randint(0, size, (batch,), generator=gen)


def losses(
    model: WorldModel,
    batch: dict[str, Tensor],
    proprio_weight: float,
    *,
    rollout_steps: int = 0,
    rollout_weight: float = 1.0,
) -> tuple[Tensor, dict[str, float]]:
    """Sum of the predictor, probe and decoder losses of a batch, and their values.

    The batch holds ``visual`` (B, T+1, N, D), raw ``proprio`` (B, T+1, P), env-unit
    ``actions`` (B, T, A), env-unit ``state`` (B, T+1, S) and optionally ``pixels``, with
    ``T = history + max(0, rollout_steps - 1)``. The teacher-forced loss uses the first
    ``history + 1`` frames; a rollout loss (``rollout_steps > 0``) imagines frames
    ``history .. T`` from the first ``history``.
    """
    history = model.history
    visual = batch["visual"].to(model.device)  # (B, T+1, N, D)
    proprio = model.normalise_proprio(batch["proprio"].to(model.device))  # (B, T+1, P)
    actions = batch["actions"]  # (B, T, A)
    want = history + max(0, rollout_steps - 1)
    if actions.shape[1] != want:
        raise ValueError(
            f"batch windows hold {actions.shape[1]} planning steps; history {history} with "
            f"rollout_steps {rollout_steps} needs {want}"
        )
    tf = slice(0, history + 1)
    loss, metrics = model.predictor_loss(
        visual[:, tf], proprio[:, tf], actions[:, :history], proprio_weight
    )
    if rollout_steps > 0:
        roll, m_roll = model.rollout_loss(visual, proprio, actions, proprio_weight)
        loss = loss + rollout_weight * roll
        metrics.update(m_roll)
    probe, m_probe = model.probe_loss(visual, proprio, batch["state"])
    loss = loss + probe
    metrics.update(m_probe)
    if "pixels" in batch:
        dec, m_dec = model.decoder_loss(visual[:, -1:], batch["pixels"][:, -1:])  # last frame
        loss = loss + dec
        metrics.update(m_dec)
    return loss, metrics


def train_step(
    model: WorldModel,
    opt: torch.optim.Optimizer,
    batch: dict[str, Tensor],
    cfg: TrainConfig,
    *,
    step: int,
    proprio_weight: float,
) -> dict[str, float]:
    """One optimiser step at the learning rate of ``step``; returns the batch's losses."""
    model.train()
    for group in opt.param_groups:
        group["lr"] = cfg.lr_at(step)
    opt.zero_grad(set_to_none=True)
    loss, metrics = losses(model, batch, proprio_weight, rollout_steps=cfg.rollout_steps,
                           rollout_weight=cfg.rollout_weight)  # fmt: skip
    loss.backward()  # type: ignore[no-untyped-call]
    if cfg.grad_clip > 0:
        for part in _PARTS:
            nn.utils.clip_grad_norm_(getattr(model, part).parameters(), cfg.grad_clip)
    opt.step()
    metrics["loss"] = float(loss.detach())
    return metrics


@torch.no_grad()
def evaluate(
    model: WorldModel, data: WindowDataset, windows: int, batch: int, rollout_steps: int = 0
) -> dict[str, float]:
    """Mean losses over up to ``windows`` evenly spaced windows, in eval mode.

    With ``rollout_steps`` the windows must be that long (see :func:`losses`) and the
    rollout's ``rollout_visual_mse`` / ``rollout_proprio_mse`` are reported too. Also
    reports ``copy_last_mse`` (the visual MSE of predicting no change) and the probe's RMSE
    in env units per state label (``probe_rmse/<label>``).
    """
    model.eval()
    picks = np.unique(np.linspace(0, len(data) - 1, min(windows, len(data))).astype(int))
    sums: dict[str, float] = {}
    count = 0
    for start in range(0, len(picks), batch):
        b = data.batch(picks[start : start + batch].tolist())
        n = len(b["visual"])
        _, metrics = losses(model, b, 1.0, rollout_steps=rollout_steps)
        vis = b["visual"]  # (B, T+1, N, D)
        head = vis[:, : model.history + 1]  # the teacher-forced frames
        metrics["copy_last_mse"] = float(((head[:, 1:] - head[:, :-1]) ** 2).mean())
        prop = model.normalise_proprio(b["proprio"].to(model.device))
        err = model.probe(Latent(vis.to(model.device), prop)) - b["state"].to(model.device)
        for i, label in enumerate(model.state_labels):
            metrics[f"probe_sq/{label}"] = float((err[..., i] ** 2).mean())
        for k, v in metrics.items():
            sums[k] = sums.get(k, 0.0) + v * n
        count += n
    out = {k: v / count for k, v in sums.items() if not k.startswith("probe_sq/")}
    for k, v in sums.items():
        if k.startswith("probe_sq/"):
            out[f"probe_rmse/{k.split('/', 1)[1]}"] = math.sqrt(v / count)
    return out


# ----------------------------------------------------------------------------- checkpoints
def save_checkpoint(
    folder: Path,
    step: int,
    model: WorldModel,
    opt: torch.optim.Optimizer,
    meta: dict[str, Any],
    *,
    keep: int = 2,
) -> Path:
    """Write ``folder/step_<step>/`` atomically (temp folder, then rename); keep the last few."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    state = opt.state_dict()
    for index, slots in state["state"].items():
        for name, value in slots.items():
            tensors[f"optim.{index}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    info = {"step": step, "param_groups": state["param_groups"], **meta}
    final = folder / f"step_{step:07d}"
    tmp = folder / f".step_{step:07d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file(tensors, str(tmp / CHECKPOINT_STATE))
    (tmp / CHECKPOINT_META).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    if final.exists():
        shutil.rmtree(final)
    tmp.replace(final)
    for old in sorted(folder.glob("step_*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint folder under ``folder``, if any."""
    done = [p for p in sorted(folder.glob("step_*")) if (p / CHECKPOINT_META).is_file()]
    return done[-1] if done else None


def load_checkpoint(path: Path, model: WorldModel, opt: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore model, optimiser and RNG from a checkpoint folder; return its JSON part."""
    info: dict[str, Any] = json.loads((path / CHECKPOINT_META).read_text())
    tensors = load_file(str(path / CHECKPOINT_STATE))
    model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(model_state, strict=True)
    slots: dict[int, dict[str, Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            slots.setdefault(int(index), {})[name] = value
    opt.load_state_dict({"state": slots, "param_groups": info["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    return info


def _check_same_run(info: dict[str, Any], cfg: TrainConfig, data_key: str, path: Path) -> None:
    """Raise unless a checkpoint was written by a run with this config and data."""
    saved = info.get("config", {})
    diff = {
        f.name
        for f in fields(TrainConfig)
        if f.name not in _RESUMABLE_CHANGES and saved.get(f.name) != getattr(cfg, f.name)
    }
    if diff:
        raise ValueError(
            f"checkpoint {path} was written with other settings ({sorted(diff)}): "
            "resume with the same settings, or pass --no-resume / another --checkpoints folder"
        )
    if info.get("data_key") != data_key:
        raise ValueError(f"checkpoint {path} was trained on {info.get('data_key')}, not {data_key}")


# ----------------------------------------------------------------------------- the run
@dataclass
class _Run:
    """Everything a training run works on, built once by :func:`_setup`."""

    data: TrainingData
    model: WorldModel
    opt: torch.optim.AdamW
    train_set: WindowDataset
    val_set: WindowDataset
    split: tuple[list[int], list[int]]
    #: Copy-last-frame MSE of visual and normalised proprio on the training windows.
    baselines: tuple[float, float]

    def proprio_weight(self, cfg: TrainConfig) -> float:
        """The proprio weight given to the predictor loss.

        ``cfg.proprio_weight`` rescaled so that both terms count relative to their
        copy-last baselines.
        """
        visual, proprio = self.baselines
        return cfg.proprio_weight * visual / proprio if proprio > 0 else 0.0


def _setup(data_path: Path, cfg: TrainConfig, feature_key: str | None) -> _Run:
    data = load_training_data(data_path, feature_key, pixel_size=cfg.decoder_size)
    train_ids, val_ids = split_episodes(len(data.episodes), cfg.val_fraction, cfg.seed)
    train_eps = [data.episodes[i] for i in train_ids]
    val_eps = [data.episodes[i] for i in val_ids]
    stats = compute_stats(train_eps, cfg.frameskip)
    model = build_model(data, cfg, stats)
    train_set = WindowDataset(train_eps, cfg.window_steps, cfg.frameskip)
    if len(train_set) == 0:
        span = cfg.window_steps * cfg.frameskip
        raise ValueError(
            f"no training windows: every training episode is shorter than (history + rollout "
            f"steps - 1) x frameskip = {span} env steps; collect longer episodes or lower "
            "--history/--frameskip/--rollout-steps"
        )
    val_set = WindowDataset(val_eps, cfg.window_steps, cfg.frameskip)
    if len(val_set) == 0:
        log.warning("no validation windows: validation metrics are computed on training windows")
        val_set = train_set
    baselines = copy_last_baselines(model, train_set, cfg.val_windows, cfg.batch_size)
    opt = make_optimizer(model, cfg)
    return _Run(data, model, opt, train_set, val_set, (train_ids, val_ids), baselines)


@torch.no_grad()
def copy_last_baselines(
    model: WorldModel, data: WindowDataset, windows: int, batch: int
) -> tuple[float, float]:
    """Copy-last-frame MSE of visual features and of normalised proprio.

    Measured over ``windows`` evenly spaced windows of ``data``.
    """
    picks = np.unique(np.linspace(0, len(data) - 1, min(windows, len(data))).astype(int))
    vis_sum = prop_sum = 0.0
    for start in range(0, len(picks), batch):
        b = data.batch(picks[start : start + batch].tolist())
        vis = b["visual"]  # (B, H+1, N, D)
        prop = model.normalise_proprio(b["proprio"].to(model.device))  # (B, H+1, P)
        vis_sum += float(((vis[:, 1:] - vis[:, :-1]) ** 2).mean()) * len(vis)
        prop_sum += float(((prop[:, 1:] - prop[:, :-1]) ** 2).mean()) * len(vis)
    return vis_sum / len(picks), prop_sum / len(picks)


def _data_info(run: _Run, cfg: TrainConfig) -> dict[str, Any]:
    meta = run.data.meta
    return {
        "dataset": run.data.path.name,
        "feature_cache": run.data.cache["key"],
        "episodes": len(run.data.episodes),
        "train_episodes": len(run.split[0]),
        "val_episodes": len(run.split[1]),
        "val_episode_names": [run.data.episodes[i].name for i in run.split[1]],
        "env_steps": run.data.env_steps,
        "train_windows": len(run.train_set),
        "collect": {k: meta[k] for k in ("steps", "policy", "scripted_fraction", "seed")},
        "env_kwargs": meta["env_kwargs_dict"],
        "train_config": {f.name: getattr(cfg, f.name) for f in fields(TrainConfig)},
        "copy_last_train": {"visual_mse": run.baselines[0], "proprio_mse": run.baselines[1]},
        "proprio_weight_effective": run.proprio_weight(cfg),
    }


def _init_from(model: WorldModel, path: Path) -> dict[str, Any]:
    """Copy a bundle's weights and statistics into ``model``; return what was loaded."""
    src = load_bundle(path, load_encoder=False)
    if src.spec.encoder_id != model.spec.encoder_id:
        raise ValueError(
            f"--init bundle {path} was trained on {src.spec.encoder_id} features, "
            f"this run on {model.spec.encoder_id}"
        )
    try:
        model.load_state_dict(src.state_dict(), strict=True)
    except RuntimeError as exc:
        raise ValueError(f"--init bundle {path} does not fit this run's sizes: {exc}") from exc
    manifest = json.loads((path / "bundle.json").read_text())
    return {"bundle": path.name, "files": manifest.get("files", {})}


def _resume(
    run: _Run, cfg: TrainConfig, folder: Path, init: dict[str, Any] | None = None
) -> tuple[int, dict[str, float]]:
    last = latest_checkpoint(folder)
    if last is None:
        return 0, {}
    info = load_checkpoint(last, run.model, run.opt)
    _check_same_run(info, cfg, run.data.cache["key"], last)
    if info.get("init") != init:
        raise ValueError(
            f"checkpoint {last} started from {info.get('init')}, this run from {init}: "
            "resume with the same --init, or pass --no-resume / another --checkpoints folder"
        )
    log.info("resumed from %s (step %d)", last, info["step"])
    return int(info["step"]), dict(info.get("val_metrics", {}))


def train(
    data_path: str | Path,
    out: str | Path,
    cfg: TrainConfig,
    *,
    feature_key: str | None = None,
    checkpoints: str | Path | None = None,
    resume: bool = True,
    progress: bool = True,
    init: str | Path | None = None,
) -> TrainResult:
    """Train a world model on a collected, encoded dataset and save it as a bundle at ``out``.

    Args:
        data_path: Dataset file (``worldplan collect`` then ``worldplan encode``).
        out: Bundle folder to write (replaced if present).
        cfg: Hyper-parameters.
        feature_key: Feature cache to use; ``None``: the dataset's only complete one.
        checkpoints: Checkpoint folder (default ``<out>.ckpt``).
        resume: Continue from the newest checkpoint there, if any.
        progress: Show a progress bar.
        init: A bundle to start from instead of a fresh initialisation (fine-tuning); it
            must have been trained on the same encoder features with the same sizes. A
            resumed run continues from its checkpoint, which already holds these weights.
    """
    start_time = time.monotonic()
    torch.set_num_threads(cfg.threads)
    out = Path(out)
    folder = Path(checkpoints) if checkpoints is not None else out.with_name(out.name + ".ckpt")
    if not resume and folder.exists():
        shutil.rmtree(folder)
    run = _setup(Path(data_path), cfg, feature_key)
    init_info = _init_from(run.model, Path(init)) if init is not None else None
    start, val_metrics = _resume(run, cfg, folder, init_info) if resume else (0, {})
    meta = {"config": asdict(cfg), "data_key": run.data.cache["key"], "init": init_info}
    bar = tqdm(total=cfg.steps, initial=start, disable=not progress, desc="train", unit="step")
    with bar:
        for step in range(start, cfg.steps):
            idx = batch_indices(cfg.seed, step, len(run.train_set), cfg.batch_size)
            batch = run.train_set.batch(idx)
            weight = run.proprio_weight(cfg)
            metrics = train_step(run.model, run.opt, batch, cfg, step=step, proprio_weight=weight)
            done = step + 1
            if done % cfg.val_every == 0 or done == cfg.steps:
                val_metrics = evaluate(
                    run.model, run.val_set, cfg.val_windows, cfg.batch_size, cfg.rollout_steps
                )
                log.info("step %d validation %s", done, _short(val_metrics))
            if cfg.checkpoint_every and (done % cfg.checkpoint_every == 0 or done == cfg.steps):
                ckpt_meta = {**meta, "val_metrics": val_metrics}
                save_checkpoint(folder, done, run.model, run.opt, ckpt_meta)
            bar.set_postfix(loss=f"{metrics['loss']:.4f}", refresh=False)
            bar.update(1)
    if not val_metrics:  # resumed at the end, or zero steps left
        val_metrics = evaluate(
            run.model, run.val_set, cfg.val_windows, cfg.batch_size, cfg.rollout_steps
        )
    run.model.eval()
    seconds = time.monotonic() - start_time
    metrics = {f"val/{k}": v for k, v in val_metrics.items()}
    metrics["train_seconds"] = seconds
    info = _data_info(run, cfg)
    if init_info is not None:
        info["init"] = init_info
    bundle = save_bundle(run.model, out, metrics, info, overwrite=True)
    return TrainResult(bundle, metrics, seconds, start)


def _short(metrics: dict[str, float]) -> str:
    keys = ("visual_mse", "copy_last_mse", "proprio_mse", "rollout_visual_mse", "probe_mse",
            "decoder_mse")  # fmt: skip
    return " ".join(f"{k}={metrics[k]:.4g}" for k in keys if k in metrics)
