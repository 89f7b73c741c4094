"""``worldplan encoder compare``: the ranking proxy and images/s for candidate encoders.

Prints one row per encoder (Spearman, AUC and near-only Spearman on push-T A/B, Spearman
on the maze layouts and granular, images/s on this CPU) and writes the same as JSON.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from world_model.encoders.base import FrozenEncoder
from world_model.encoders.proxy import PUSHT_ID, latent_distances, proxy_frames, score

log = logging.getLogger(__name__)

#: (column key, env id, variant, env kwargs) of every proxy case.
CASES: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    ("pusht_A", PUSHT_ID, "block", {}),
    ("pusht_B", PUSHT_ID, "agent", {}),
    ("maze_umaze", "worldplan/Maze-v0", "interp", {"layout": "umaze"}),
    ("maze_tworoom", "worldplan/Maze-v0", "interp", {"layout": "tworoom"}),
    ("granular", "worldplan/Granular-v0", "interp", {}),
)


@dataclass(frozen=True)
class CompareConfig:
    """What ``worldplan encoder compare`` measures."""

    #: Perturbed states per case.
    n: int = 300
    #: Seeds; the table shows the mean over them.
    seeds: tuple[int, ...] = (0,)
    #: Rendered frame side in pixels.
    frame_size: int = 64
    #: Images per timed encoder call.
    batch: int = 256
    #: Timed repetitions (median reported).
    repeats: int = 3

    def __post_init__(self) -> None:
        if self.n < 20 or not self.seeds or self.frame_size < 16 or self.batch < 1:
            raise ValueError(f"bad CompareConfig {self}: need n >= 20, seeds, frame_size >= 16")


def images_per_second(encoder: Callable[[Tensor], Tensor], cfg: CompareConfig) -> float:
    """Median images/s of ``encoder`` on uint8 frames of ``cfg.frame_size``."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (cfg.batch, cfg.frame_size, cfg.frame_size, 3), generator=gen)
    x = x.to(torch.uint8)
    encoder(x[:8])  # warm-up
    times = []
    for _ in range(cfg.repeats):
        t0 = time.perf_counter()
        encoder(x)
        times.append(time.perf_counter() - t0)
    return cfg.batch / statistics.median(times)


def compare(encoders: dict[str, FrozenEncoder], cfg: CompareConfig) -> list[dict[str, Any]]:
    """Proxy scores (mean over seeds) and images/s of each encoder."""
    scores: dict[str, dict[str, list[tuple[float, float, float, float]]]] = {
        k: {} for k in encoders
    }
    jobs = [(case, seed) for case in CASES for seed in cfg.seeds]
    for (key, env_id, variant, kwargs), seed in tqdm(jobs, desc="proxy cases"):
        goal, frames, true = proxy_frames(
            env_id, variant, n=cfg.n, seed=seed, image_size=cfg.frame_size, env_kwargs=kwargs
        )
        for name, enc in encoders.items():
            q = score(latent_distances(enc, goal, frames), true, env_id, variant)
            scores[name].setdefault(key, []).append(
                (q.spearman, q.auc, q.near_spearman, q.far_spearman)
            )
    rows = []
    for name, enc in encoders.items():
        row: dict[str, Any] = {"encoder": name, **enc.describe()}
        for key, vals in scores[name].items():
            mean = np.mean(np.asarray(vals), axis=0)
            row[key] = {
                "spearman": mean[0],
                "auc": mean[1],
                "near_spearman": mean[2],
                "far_spearman": mean[3],
            }
        row["images_per_s"] = images_per_second(enc, cfg)
        rows.append(row)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """A markdown table of :func:`compare`'s rows (push-T A / B, then the other envs)."""
    lines = [
        "| encoder | N x D | Spearman A / B | AUC A / B | near-only Sp. A / B | far-only Sp. A / B "
        "| Spearman maze U / 2-room / granular | images/s |",
        "|" + " --- |" * 8,
    ]
    for r in rows:
        a, b = r["pusht_A"], r["pusht_B"]
        others = " / ".join(
            f"{r[k]['spearman']:.2f}" for k in ("maze_umaze", "maze_tworoom", "granular")
        )
        lines.append(
            f"| {r['encoder']} | {r['num_patches']} x {r['embed_dim']} "
            + "".join(
                f"| {a[m]:.{p}f} / {b[m]:.{p}f} "
                for m, p in (("spearman", 2), ("auc", 3), ("near_spearman", 2), ("far_spearman", 2))
            )
            + f"| {others} | {r['images_per_s']:,.0f} |"
        )
    return "\n".join(lines)


def write_json(path: Path, rows: list[dict[str, Any]], cfg: CompareConfig) -> None:
    """Write the rows and the config as JSON (parent folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"config": cfg.__dict__, "threads": torch.get_num_threads(), "rows": rows}
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")


def default_candidates(
    random_vit: bool = False, autoencoder_steps: int = 0, seed: int = 0
) -> dict[str, FrozenEncoder]:
    """Raw pixels, the offline default, the pyramid variants it was chosen from, controls.

    Args:
        random_vit: Add a random-init ViT-S/14 at 112 px (slow on CPU).
        autoencoder_steps: Train the conv autoencoder this many steps on sim frames and
            add it (0: skip).
        seed: Seed of the autoencoder's frames and training.
    """
    from world_model.encoders import OFFLINE_DEFAULT, PIXEL_BASELINE, load_encoder  # noqa: PLC0415
    from world_model.encoders.offline import PyramidTokens, RandomConvTokens  # noqa: PLC0415

    out: dict[str, FrozenEncoder] = {
        "raw pixels (8x8 tokens)": load_encoder(PIXEL_BASELINE),
        "random small conv (8x8 tokens)": RandomConvTokens(image_size=64, grid=8, dim=64),
        "pyramid s1,2,4,8 c2 (48-d)": PyramidTokens(encoder_id="pyramid-c2"),
        "pyramid s1,2,4,8 c4,2,2,2 equal weights": PyramidTokens(
            cells=(4, 2, 2, 2), encoder_id="pyramid-c4-eq"
        ),
        f"{OFFLINE_DEFAULT} (chosen)": load_encoder(OFFLINE_DEFAULT),
    }
    if autoencoder_steps > 0:
        from world_model.encoders import autoencoder as ae  # noqa: PLC0415

        frames = ae.collect_frames(per_source=1500, seed=seed)
        model = ae.train_autoencoder(frames, steps=autoencoder_steps, seed=seed)
        note = (
            f"conv autoencoder, {autoencoder_steps} steps on {len(frames)} sim frames, seed {seed}"
        )
        out[f"conv autoencoder, {autoencoder_steps} steps"] = ae.AutoencoderTokens(model, note)
    if random_vit:
        from world_model.encoders.dinov2 import (  # noqa: PLC0415
            CONFIGS,
            DinoV2Encoder,
            random_state_dict,
        )

        cfg = CONFIGS["dinov2_vits14"]
        out["random-init ViT-S/14, 112 px"] = DinoV2Encoder(
            "random-vits14",
            cfg,
            state_dict=random_state_dict(cfg),
            weights_sha256="",
            provenance="random init (a control)",
            image_size=112,
        )
    return out
