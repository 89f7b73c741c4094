"""``worldplan bench model``: encoder images/s and predictor rollout steps/s on this machine.

Every row also reports the FLOP/s it reaches as a share of this machine's
measured peak: the peak is the best of a few large fp32 matmuls (``2 n^3`` FLOPs
each) timed in the same run, with the same thread count. Model FLOPs are counted
with ``torch.utils.flop_counter`` on one call (attention included: the CPU SDPA
kernel is given the standard ``4 B h L^2 d`` formula, which counts masked-out
entries too, as the kernel computes them).

Rows:

* ``encoder``: images/s at the encoder's own batch (uint8 frames at the model's image size).
* ``rollout``: planning steps/s of :meth:`WorldModel.rollout` over a batch of candidate
  action sequences (256 by default), no gradient (CEM / MPPI).
* ``rollout+backward``: the same with a backward pass to the actions (gradient planner).

A step is one imagined planning step of one candidate sequence.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from world_model.model import WorldModel
from world_model.types import Encoder, Latent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchConfig:
    """What ``worldplan bench model`` measures."""

    #: Candidate action sequences rolled out together.
    batch: int = 256
    #: Planning steps per rollout.
    horizon: int = 5
    #: Context frames given to the rollout (at most the model's history).
    context: int = 1
    #: Images per encoder call.
    encoder_batch: int = 64
    #: Timed repetitions per row (the median is reported).
    repeats: int = 3
    #: Side of the square fp32 matmul that measures the peak.
    matmul_size: int = 2048

    def __post_init__(self) -> None:
        for name in ("batch", "horizon", "context", "encoder_batch", "repeats", "matmul_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"BenchConfig.{name} must be a positive int, got {value!r}")


@dataclass(frozen=True)
class BenchRow:
    """One measured row."""

    name: str
    #: Items per second (images or planning steps).
    rate: float
    unit: str
    #: Median seconds per timed call.
    seconds_per_call: float
    #: Items per timed call.
    items_per_call: int
    #: FLOPs per item, counted.
    flops_per_item: float
    #: Achieved FLOP/s.
    flops_per_s: float
    #: Achieved / peak FLOP/s.
    peak_share: float


def _sdpa_cpu_flops(
    query_shape: torch.Size, key_shape: torch.Size, value_shape: torch.Size, *_: Any, **__: Any
) -> int:
    """``Q K^T`` and ``P V``: 2 B h Lq Lk (d + d_v) FLOPs."""
    b, h, lq, d = query_shape
    lk, dv = key_shape[2], value_shape[3]
    return 2 * b * h * lq * lk * (d + dv)


_CUSTOM_FLOPS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops}


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` (matmuls, convolutions and attention)."""
    with FlopCounterMode(display=False, custom_mapping=_CUSTOM_FLOPS) as counter:
        fn()
    total: int = counter.get_total_flops()
    return total


def _median_seconds(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    fn()  # warm-up
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_peak_flops(size: int, repeats: int, device: torch.device) -> float:
    """Best FLOP/s of ``size`` x ``size`` fp32 matmuls on ``device``."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    a @ b  # warm-up
    _sync(device)
    best = float("inf")
    for _ in range(max(repeats, 3)):
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best


def _row(name: str, unit: str, *, items: int, seconds: float, flops: int, peak: float) -> BenchRow:
    return BenchRow(
        name=name,
        rate=items / seconds,
        unit=unit,
        seconds_per_call=seconds,
        items_per_call=items,
        flops_per_item=flops / items,
        flops_per_s=flops / seconds,
        peak_share=flops / seconds / peak,
    )


def bench_encoder(
    encoder: Encoder, image_size: int, cfg: BenchConfig, peak: float, device: torch.device
) -> BenchRow:
    """Encoder images/s on uint8 frames of ``image_size`` px."""
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (cfg.encoder_batch, image_size, image_size, 3), generator=gen)
    images = images.to(torch.uint8).to(device)

    def call() -> object:
        with torch.no_grad():
            return encoder(images)

    flops = count_flops(call)
    seconds = _median_seconds(call, cfg.repeats, device)
    return _row(
        "encoder", "images/s", items=cfg.encoder_batch, seconds=seconds, flops=flops, peak=peak
    )


def bench_rollout(model: WorldModel, cfg: BenchConfig, peak: float, *, backward: bool) -> BenchRow:
    """Rollout planning steps/s over ``cfg.batch`` candidate sequences."""
    c = model.predictor.config
    gen = torch.Generator().manual_seed(0)
    ctx = min(cfg.context, model.history)
    z0 = Latent(
        torch.randn(1, ctx, c.num_patches, c.embed_dim, generator=gen).to(model.device),
        torch.randn(1, ctx, c.proprio_dim, generator=gen).to(model.device),
    )
    noise = torch.randn(cfg.batch, cfg.horizon, model.action_dim, generator=gen)
    actions = (model.action_mean + noise.to(model.device) * model.action_std).detach()

    def call() -> object:
        if not backward:
            with torch.no_grad():
                return model.rollout(z0, actions)
        a = actions.clone().requires_grad_(True)
        model.rollout(z0, a).visual[:, -1].square().mean().backward()  # type: ignore[no-untyped-call]
        return a.grad

    flops = count_flops(call)
    seconds = _median_seconds(call, cfg.repeats, model.device)
    name = "rollout+backward" if backward else "rollout"
    return _row(
        name, "steps/s", items=cfg.batch * cfg.horizon, seconds=seconds, flops=flops, peak=peak
    )


def run_bench(model: WorldModel, cfg: BenchConfig, encoder: Encoder | None) -> dict[str, Any]:
    """Measure the peak and every row; the result is what the JSON file holds."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    device = model.device
    peak = measure_peak_flops(cfg.matmul_size, cfg.repeats, device)
    log.info("peak fp32 matmul: %.1f GFLOP/s", peak / 1e9)
    rows = []
    if encoder is not None:
        rows.append(bench_encoder(encoder, model.spec.image_size, cfg, peak, device))
    rows.append(bench_rollout(model, cfg, peak, backward=False))
    rows.append(bench_rollout(model, cfg, peak, backward=True))
    return {
        "device": str(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "peak_matmul_flops_per_s": peak,
        "config": asdict(cfg),
        "model": {
            "env_id": model.env_id,
            "encoder_id": model.spec.encoder_id,
            "predictor": asdict(model.predictor.config),
            "predictor_params": sum(p.numel() for p in model.predictor.parameters()),
        },
        "rows": [asdict(r) for r in rows],
    }


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table of a :func:`run_bench` result."""
    lines = [
        f"device {result['device']}, {result['threads']} threads, torch {result['torch']}; "
        f"peak fp32 matmul {result['peak_matmul_flops_per_s'] / 1e9:.1f} GFLOP/s",
        f"{'row':<18}{'rate':>14}  {'unit':<10}{'GFLOP/item':>11}{'GFLOP/s':>10}{'of peak':>9}",
    ]
    for r in result["rows"]:
        lines.append(
            f"{r['name']:<18}{r['rate']:>14.1f}  {r['unit']:<10}{r['flops_per_item'] / 1e9:>11.4f}"
            f"{r['flops_per_s'] / 1e9:>10.2f}{100 * r['peak_share']:>8.1f}%"
        )
    return "\n".join(lines)


def write_json(result: dict[str, Any], path: Path) -> None:
    """Write ``result`` to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(path)
