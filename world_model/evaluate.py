"""``worldplan eval-model``: open-loop prediction quality of a bundle on held-out episodes.

For windows of held-out episodes the model gets ``history`` frames of context
(frames ``t0 - (k-1) f, ..., t0`` with the actions between them) and rolls out the
recorded actions open loop. At each horizon it is compared with the copy-last-frame
baseline (predict that nothing changes: the features and the probed state of frame
``t0``):

* ``latent_mse``: mean squared error of the predicted patch features vs the encoder's
  features of the true frame (``copy_latent_mse`` for the baseline);
* ``state_nrmse``: RMS error of the probed state in units of the training data's state
  std, averaged over the state entries, and ``state_rmse/<label>`` in env units
  (``copy_state_*`` for the baseline, ``floor_state_*`` for the probe applied to the
  true frame's features: the best any prediction can score through this probe).

Horizons are given in env steps. The model predicts whole planning steps of
``frameskip`` env steps, so a horizon of ``e`` env steps is evaluated after
``ceil(e / frameskip)`` planning steps, i.e. at ``ceil(e / frameskip) * frameskip``
env steps; the table shows both numbers (with frameskip 5, "1 env step" is measured
at 5 env steps, the shortest the model can predict).

Held-out episodes: when the dataset is the one the bundle was trained on, the
bundle's validation split (same seed and fraction as training); otherwise every
episode of the dataset. The encoder ranking proxy (Spearman correlation between
latent distance and true state distance to a goal frame, next to raw pixels) is
computed on the same episodes.

Shapes: B windows, K context frames, H planning steps, N patch tokens, D feature dim,
P proprio dim, A planning-action dim, S state dim.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from world_model import data as wm_data
from world_model.encoders.offline import PixelTokens
from world_model.encoders.proxy import rank_quality
from world_model.model import WorldModel
from world_model.types import Latent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalConfig:
    """What ``worldplan eval-model`` measures."""

    #: Horizons in env steps.
    horizons: tuple[int, ...] = (1, 5, 25)
    #: Most windows per episode (evenly spaced over the episode).
    windows_per_episode: int = 8
    #: Most held-out episodes used (0: all).
    max_episodes: int = 0
    #: Windows per rollout batch.
    batch_size: int = 64
    #: ``"auto"`` (the bundle's validation split when the dataset is its training set,
    #: else all episodes), ``"val"`` or ``"all"``.
    split: str = "auto"
    #: Frames per episode in the held-out-episode ranking (evenly spaced; the last is the goal).
    proxy_frames: int = 16
    #: States rendered for the encoder ranking proxy (``rank_quality``; 0: skip it).
    proxy_states: int = 300

    def __post_init__(self) -> None:
        if not self.horizons or any(not isinstance(h, int) or h < 1 for h in self.horizons):
            raise ValueError(f"horizons must be positive env-step counts, got {self.horizons}")
        for name in ("windows_per_episode", "batch_size", "proxy_frames"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"EvalConfig.{name} must be a positive int, got {value!r}")
        if self.proxy_states < 0:
            raise ValueError(f"EvalConfig.proxy_states must be >= 0, got {self.proxy_states}")
        if self.max_episodes < 0:
            raise ValueError(f"EvalConfig.max_episodes must be >= 0, got {self.max_episodes}")
        if self.split not in ("auto", "val", "all"):
            raise ValueError(f"EvalConfig.split must be auto, val or all, got {self.split!r}")


@dataclass(frozen=True)
class HeldOut:
    """Held-out episodes as arrays (features from the cache or encoded here)."""

    names: list[str]
    features: list[NDArray[np.float32]]  # each (T+1, N, D)
    actions: list[NDArray[np.float32]]  # each (T, env_A)
    proprio: list[NDArray[np.float32]]  # each (T+1, P)
    state: list[NDArray[np.float32]]  # each (T+1, S) probe targets, env units
    pixels: list[NDArray[np.uint8]]  # each (F, h, w, 3): the proxy frames only
    pixel_index: list[NDArray[np.int64]]  # each (F,): which frames ``pixels`` holds
    source: str


# ----------------------------------------------------------------------------- data
def _held_out_names(
    model_info: dict[str, Any], path: Path, cfg: EvalConfig
) -> tuple[list[str], str]:
    """The episode names to evaluate on and a sentence saying which split they are."""
    names = wm_data.complete_episodes(path)
    if not names:
        raise ValueError(f"{path} has no complete episodes")
    trained_on = model_info.get("dataset")
    split = cfg.split
    if split == "auto":
        split = "val" if trained_on == path.name else "all"
    if split == "all":
        picked, source = names, f"all {len(names)} episodes of {path.name}"
    else:
        train_cfg = model_info.get("train_config", {})
        if trained_on != path.name or "val_fraction" not in train_cfg:
            raise ValueError(
                f"--split val needs the bundle's training dataset ({trained_on!r}), got {path.name}"
            )
        if len(names) != model_info.get("episodes"):
            raise ValueError(
                f"{path} has {len(names)} episodes, the bundle was trained on "
                f"{model_info.get('episodes')}: the validation split cannot be rebuilt"
            )
        _, val = wm_data.split_episodes(len(names), train_cfg["val_fraction"], train_cfg["seed"])
        if not val:
            raise ValueError(
                "the bundle's validation split is empty: pass --split all and a "
                "held-out dataset (`worldplan collect` with another --seed)"
            )
        picked = [names[i] for i in val]
        source = f"validation split of {path.name}: {len(picked)} of {len(names)} episodes"
    if cfg.max_episodes:
        picked = picked[: cfg.max_episodes]
    return picked, source


def load_held_out(
    model: WorldModel, path: str | Path, cfg: EvalConfig, info: dict[str, Any]
) -> HeldOut:
    """Read the held-out episodes, with features from the cache of the model's encoder.

    Without a matching cache the frames are encoded here with the model's encoder.
    """
    path = Path(path)
    meta = wm_data.read_meta(path)
    if meta["env_id"] != model.env_id:
        raise ValueError(f"{path} holds {meta['env_id']} episodes, the model is for {model.env_id}")
    names, source = _held_out_names(info, path, cfg)
    key = _cache_key(model, path)
    if key is None and model.encoder is None:
        raise ValueError(
            f"{path} has no feature cache for encoder {model.spec.encoder_id} and no encoder is "
            "loaded: run `worldplan encode` on it, or make the encoder available"
        )
    out = HeldOut(names, [], [], [], [], [], [], source)
    with h5py.File(path, "r") as f:
        for name in names:
            _read_episode(f, name, key, model=model, meta=meta, cfg=cfg, out=out)
    return out


def _cache_key(model: WorldModel, path: Path) -> str | None:
    """The dataset's complete feature cache made by the model's encoder, if any."""
    total = len(wm_data.complete_episodes(path))
    for key, info in wm_data.feature_caches(path).items():
        same = info.get("encoder_id") == model.spec.encoder_id
        if same and info.get("sha256") == model.spec.encoder_sha256 and info["episodes"] == total:
            return key
    return None


def _read_episode(
    f: h5py.File,
    name: str,
    key: str | None,
    *,
    model: WorldModel,
    meta: dict[str, Any],
    cfg: EvalConfig,
    out: HeldOut,
) -> None:
    """Append episode ``name`` to ``out``."""
    g = f["episodes"][name]
    labels, state = wm_data.probe_targets(meta["env_id"], meta["state_labels"], g["state"][()])
    if labels != model.state_labels:
        raise ValueError(
            f"dataset probe targets {labels} differ from the model's {model.state_labels}"
        )
    pixels = g["pixels"]
    if key is not None:
        feats = f["features"][key][name][()].astype(np.float32)  # (T+1, N, D)
    else:
        if model.encoder is None:
            raise ValueError(f"no cached features for {name} and no encoder loaded")
        feats = wm_data.encode_frames(model.encoder, pixels[()], cfg.batch_size).astype(np.float32)
    index = np.unique(np.linspace(0, len(feats) - 1, cfg.proxy_frames).round().astype(np.int64))
    out.features.append(feats)
    out.actions.append(g["actions"][()].astype(np.float32))
    out.proprio.append(g["proprio"][()].astype(np.float32))
    out.state.append(state)
    out.pixels.append(pixels[index.tolist()])
    out.pixel_index.append(index)


# ----------------------------------------------------------------------------- windows
@dataclass(frozen=True)
class Windows:
    """Evaluation windows stacked as tensors."""

    context: Latent  # (B, K, ...)
    past_actions: Tensor  # (B, K-1, A) env units
    actions: Tensor  # (B, H, A) env units
    target_visual: Tensor  # (B, H, N, D)
    target_proprio: Tensor  # (B, H, P) normalised
    target_state: Tensor  # (B, H, S) env units
    last_state: Tensor  # (B, S): true state of the last context frame


def make_windows(model: WorldModel, held: HeldOut, steps: int, per_episode: int) -> Windows:
    """Windows with ``history`` context frames and ``steps`` planning steps of true actions."""
    f, k = model.frameskip, model.history
    keys = ("vis", "prop", "past", "act", "tv", "tp", "ts", "ls")
    rows: dict[str, list[Tensor]] = {key: [] for key in keys}
    for feats, acts, prop, state in zip(
        held.features, held.actions, held.proprio, held.state, strict=True
    ):
        first, last = (k - 1) * f, len(acts) - steps * f  # t0 range: [first, last]
        if last < first:
            continue
        for t0 in np.unique(np.linspace(first, last, per_episode).round().astype(int)):
            ctx = slice(t0 - (k - 1) * f, t0 + 1, f)
            fut = slice(t0 + f, t0 + steps * f + 1, f)
            rows["vis"].append(torch.from_numpy(feats[ctx]))
            rows["prop"].append(torch.from_numpy(prop[ctx]))
            rows["past"].append(torch.from_numpy(acts[t0 - (k - 1) * f : t0].reshape(k - 1, -1)))
            rows["act"].append(torch.from_numpy(acts[t0 : t0 + steps * f].reshape(steps, -1)))
            rows["tv"].append(torch.from_numpy(feats[fut]))
            rows["tp"].append(torch.from_numpy(prop[fut]))
            rows["ts"].append(torch.from_numpy(state[fut]))
            rows["ls"].append(torch.from_numpy(state[t0]))
    if not rows["vis"]:
        raise ValueError(
            f"no held-out episode is long enough: need {(k - 1) * f + steps * f} env steps "
            f"(history {k}, frameskip {f}, {steps} planning steps); use shorter --horizons"
        )
    st = {key: torch.stack(v).to(model.device) for key, v in rows.items()}
    context = Latent(st["vis"], model.normalise_proprio(st["prop"]))
    target_p = model.normalise_proprio(st["tp"])
    return Windows(context, st["past"], st["act"], st["tv"], target_p, st["ts"], st["ls"])


# ----------------------------------------------------------------------------- metrics
@torch.no_grad()
def open_loop(model: WorldModel, w: Windows, batch: int) -> tuple[Latent, Tensor, Tensor, Tensor]:
    """Roll out every window.

    Returns:
        Predictions, their probed states, the copy-last probe and the probe floor.
    """
    preds_v, preds_p, probe_pred, probe_copy, probe_floor = [], [], [], [], []
    for s in range(0, len(w.actions), batch):
        sl = slice(s, s + batch)
        ctx = Latent(w.context.visual[sl], w.context.proprio[sl])
        z = model.rollout(ctx, w.actions[sl], past_actions=w.past_actions[sl])  # (b, H, ...)
        preds_v.append(z.visual)
        preds_p.append(z.proprio)
        probe_pred.append(model.probe(z))  # (b, H, S)
        probe_copy.append(model.probe(ctx.frames(-1)))  # (b, 1, S)
        true = Latent(w.target_visual[sl], w.target_proprio[sl])
        probe_floor.append(model.probe(true))  # (b, H, S)
    pred = Latent(torch.cat(preds_v), torch.cat(preds_p))
    return pred, torch.cat(probe_pred), torch.cat(probe_copy), torch.cat(probe_floor)


def horizon_metrics(
    model: WorldModel, w: Windows, outputs: tuple[Latent, Tensor, Tensor, Tensor], h: int
) -> dict[str, float]:
    """Metrics after ``h`` planning steps (1-based)."""
    pred, s_pred, s_copy, s_floor = outputs
    target_v = w.target_visual[:, h - 1]  # (B, N, D)
    target_s = w.target_state[:, h - 1]  # (B, S)
    copy_v = w.context.visual[:, -1]  # (B, N, D)
    out = {
        "latent_mse": float((pred.visual[:, h - 1] - target_v).pow(2).mean()),
        "copy_latent_mse": float((copy_v - target_v).pow(2).mean()),
    }
    for prefix, est in (
        ("", s_pred[:, h - 1]),
        ("copy_", s_copy[:, 0]),
        ("floor_", s_floor[:, h - 1]),
    ):
        out.update(_state_errors(model, est, target_s, prefix))
    out["true_copy_state_nrmse"] = _nrmse(model, w.last_state, target_s)
    return out


def _state_errors(model: WorldModel, est: Tensor, target: Tensor, prefix: str) -> dict[str, float]:
    rmse = (est - target).pow(2).mean(0).sqrt()  # (S,)
    out = {f"{prefix}state_nrmse": _nrmse(model, est, target)}
    for label, value in zip(model.state_labels, rmse.tolist(), strict=True):
        out[f"{prefix}state_rmse/{label}"] = value
    return out


def _nrmse(model: WorldModel, est: Tensor, target: Tensor) -> float:
    """RMSE in units of the training state std, averaged over state entries."""
    return float(((est - target) / model.state_std).pow(2).mean(0).sqrt().mean())


# ----------------------------------------------------------------------------- ranking proxy
def spearman(x: NDArray[np.float64], y: NDArray[np.float64]) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    if len(x) < 3:
        return float("nan")
    rx, ry = _ranks(x), _ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = math.sqrt(float((rx**2).sum() * (ry**2).sum()))
    return float((rx * ry).sum() / denom) if denom > 0 else float("nan")


def _ranks(x: NDArray[np.float64]) -> NDArray[np.float64]:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(len(x), dtype=np.float64)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return np.asarray(sums[inverse] / counts[inverse], dtype=np.float64)


def episode_ranking(model: WorldModel, held: HeldOut) -> dict[str, float]:
    """Does latent distance to a goal frame rank frames by their true state distance?

    For every held-out episode the last proxy frame is the goal; every other proxy
    frame's distance to it is measured in the encoder's features (MSE), in raw pixels
    (MSE) and in true state (Euclidean over state entries z-scored with the training
    std). Reported: Spearman of latent and of pixel distance against state distance
    over all pairs, and over the nearer half of the pairs (what final alignment needs).
    """
    lat, pix, true = [], [], []
    std = model.state_std.cpu().numpy()
    for feats, px, idx, state in zip(
        held.features, held.pixels, held.pixel_index, held.state, strict=True
    ):
        if len(idx) < 2:
            continue
        f = feats[idx].astype(np.float64)  # (F, N, D)
        p = px.astype(np.float64) / 255.0  # (F, h, w, 3)
        s = state[idx].astype(np.float64) / std  # (F, S)
        lat.append(((f[:-1] - f[-1]) ** 2).mean(axis=(1, 2)))
        pix.append(((p[:-1] - p[-1]) ** 2).mean(axis=(1, 2, 3)))
        true.append(np.sqrt(((s[:-1] - s[-1]) ** 2).sum(axis=1)))
    if not lat:
        return {"pairs": 0.0}
    d_lat, d_pix, d_true = np.concatenate(lat), np.concatenate(pix), np.concatenate(true)
    near = d_true <= np.median(d_true)
    return {
        "pairs": float(len(d_true)),
        "spearman_latent": spearman(d_lat, d_true),
        "spearman_pixels": spearman(d_pix, d_true),
        "near_spearman_latent": spearman(d_lat[near], d_true[near]),
        "near_spearman_pixels": spearman(d_pix[near], d_true[near]),
    }


# ----------------------------------------------------------------------------- the command
def evaluate_model(
    model: WorldModel, data_path: str | Path, cfg: EvalConfig, model_info: dict[str, Any]
) -> dict[str, Any]:
    """All metrics of ``worldplan eval-model`` as a JSON-ready dict.

    Args:
        model: The loaded bundle (eval mode).
        data_path: A dataset written by ``worldplan collect`` (and ``encode``).
        cfg: What to measure.
        model_info: The bundle's ``training_data`` entry (names its dataset and split).
    """
    model.eval()
    held = load_held_out(model, data_path, cfg, model_info)
    f = model.frameskip
    steps = {e: math.ceil(e / f) for e in cfg.horizons}
    windows = make_windows(model, held, max(steps.values()), cfg.windows_per_episode)
    outputs = open_loop(model, windows, cfg.batch_size)
    rows = []
    for env_steps, h in steps.items():
        row: dict[str, float] = {"env_steps": env_steps, "planning_steps": h}
        row["measured_env_steps"] = h * f
        row.update(horizon_metrics(model, windows, outputs, h))
        rows.append(row)
    return {
        "env_id": model.env_id,
        "encoder_id": model.spec.encoder_id,
        "frameskip": f,
        "history": model.history,
        "data": str(data_path),
        "held_out": held.source,
        "episodes": len(held.names),
        "windows": len(windows.actions),
        "config": asdict(cfg),
        "horizons": rows,
        "episode_ranking": episode_ranking(model, held),
        "ranking_proxy": encoder_proxy(model, cfg.proxy_states, model_info.get("env_kwargs")),
    }


def format_table(result: dict[str, Any]) -> str:
    """The result as a plain-text table."""
    lines = [
        f"{result['env_id']} | encoder {result['encoder_id']} | frameskip {result['frameskip']}, "
        f"history {result['history']} | {result['windows']} windows from {result['held_out']}",
        f"{'env steps':>9} {'(measured)':>10} {'latent MSE':>11} {'copy-last':>10} "
        f"{'state nRMSE':>12} {'copy-last':>10} {'probe floor':>12}",
    ]
    for r in result["horizons"]:
        lines.append(
            f"{r['env_steps']:>9} {r['measured_env_steps']:>10} {r['latent_mse']:>11.4f} "
            f"{r['copy_latent_mse']:>10.4f} {r['state_nrmse']:>12.3f} "
            f"{r['copy_state_nrmse']:>10.3f} {r['floor_state_nrmse']:>12.3f}"
        )
    for row in result["ranking_proxy"]:
        lines.append(
            f"ranking proxy ({row['variant']}, {row['n']} states): Spearman encoder "
            f"{row['encoder']['spearman']:.3f} vs pixels {row['pixels']['spearman']:.3f}; "
            f"near-only {row['encoder']['near_spearman']:.3f} vs "
            f"{row['pixels']['near_spearman']:.3f}; AUC {row['encoder']['auc']:.3f} vs "
            f"{row['pixels']['auc']:.3f}"
        )
    p = result["episode_ranking"]
    if p.get("pairs"):
        lines.append(
            f"held-out episodes ({int(p['pairs'])} frame-goal pairs): Spearman encoder "
            f"{p['spearman_latent']:.3f} vs pixels {p['spearman_pixels']:.3f}; near half "
            f"{p['near_spearman_latent']:.3f} vs {p['near_spearman_pixels']:.3f}"
        )
    return "\n".join(lines)


def write_json(result: dict[str, Any], path: Path) -> None:
    """Write ``result`` to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(path)


def encoder_proxy(
    model: WorldModel, states: int, env_kwargs: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The encoder ranking proxy (:func:`world_model.encoders.proxy.rank_quality`) vs raw pixels.

    Needs the model's encoder; returns one row per variant (push-T: block, agent), or
    nothing when ``states`` is 0 or no encoder is loaded.
    """
    if states == 0 or model.encoder is None:
        if states:
            log.warning("ranking proxy skipped: no encoder loaded")
        return []
    size = model.spec.image_size
    pixels = PixelTokens(image_size=size, grid=8 if size % 8 == 0 else 1)
    kwargs = dict(env_kwargs) if env_kwargs is not None else dict(model.spec.env_options)
    variants = ("block", "agent") if model.env_id == "worldplan/PushT-v0" else ("block",)
    rows = []
    for variant in variants:
        enc, pix = (
            rank_quality(e, model.env_id, variant, n=states, image_size=size, env_kwargs=kwargs)
            for e in (model.encoder, pixels)
        )
        rows.append(
            {"variant": variant, "n": enc.n, "encoder": enc.as_dict(), "pixels": pix.as_dict()}
        )
    return rows


def needs_encoder(model: WorldModel, data_path: str | Path) -> bool:
    """Whether evaluating on ``data_path`` needs the encoder (no cache of the model's encoder)."""
    return _cache_key(model, Path(data_path)) is None
