"""``worldplan bench server``: plans/s and latency of the HTTP service by client concurrency.

The service runs in a uvicorn subprocess bound to 127.0.0.1 on a free port,
either on the model bundles of ``--models-dir`` or, with ``--tiny``, on the
load-testing model of :func:`load_test_registry`. For each concurrency level,
that many asyncio clients (httpx) post plan requests back to back for a fixed
duration (and at most ``max_requests`` in all); the table gives plans/s, p50/p95
latency, errors, and from ``/metrics`` the mean batch size and the planner time
per batch call. Results are printed and written as JSON.

The load-testing model is a randomly initialised world model of the test size
(16 tokens of dim 8, a 2-layer predictor) behind a seeded random patch
projection: it costs what a small planner call costs, and it plans nothing
meaningful. It exists so the service can be load-tested where no bundle exists.

Run the child server alone with ``python -m server.bench serve PORT [--tiny]``;
its settings come from ``WORLDPLAN_*`` environment variables.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import json
import logging
import os
import platform
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from PIL import Image
from torch import Tensor, nn

from server.registry import LoadedModel, ModelRegistry
from world_model.heads import DecoderConfig, ProbeConfig
from world_model.model import ModelSpec, NormStats, WorldModel
from world_model.predictor import PredictorConfig

log = logging.getLogger(__name__)

#: Name of the load-testing model in the registry of :func:`load_test_registry`.
LOAD_TEST_MODEL = "loadtest-pusht"
#: Side (px) of the images the load-testing model takes.
LOAD_TEST_IMAGE_SIZE = 32
_HEALTH_TIMEOUT_S = 120.0


# ----- the load-testing model ----------------------------------------------------------------
class PatchProjection(nn.Module):
    """Area-resize to 16 px, 4x4 patches, a fixed seeded projection to 8-d tokens.

    The encoder of the load-testing model; it is not a vision encoder and says so.
    """

    encoder_id = "loadtest_patch_projection"
    image_size = 16
    num_patches = 16
    embed_dim = 8
    provenance = "seeded random patch projection for load testing; not a vision encoder"

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        proj = torch.randn(48, 8, generator=gen) / 7.0  # (3 * 4 * 4, D)
        self.proj = nn.Parameter(proj, requires_grad=False)
        self.weights_sha256 = hashlib.sha256(proj.numpy().tobytes()).hexdigest()

    def forward(self, images: Tensor) -> Tensor:
        """uint8 images (B, H, W, 3) -> tokens (B, 16, 8)."""
        x = images.permute(0, 3, 1, 2).float() / 255.0  # (B, 3, H, W)
        x = F.interpolate(x, size=(16, 16), mode="area")  # (B, 3, 16, 16)
        x = F.unfold(x, kernel_size=4, stride=4).transpose(1, 2)  # (B, 16, 48)
        return x @ self.proj  # (B, 16, 8)


def load_test_registry(seed: int = 0) -> ModelRegistry:
    """A registry holding one randomly initialised push-T-shaped model, for load tests only.

    Its state statistics put every probed position mid-workspace (256 px), so plans
    pass the final guardrail check; its actions are those of push-T (2-D, frameskip 2).
    """
    encoder = PatchProjection(seed)
    labels = ("agent_x", "agent_y", "block_x", "block_y")
    spec = ModelSpec(
        env_id="worldplan/PushT-v0",
        frameskip=2,
        env_action_dim=2,
        history=3,
        image_size=LOAD_TEST_IMAGE_SIZE,
        state_labels=labels,
        encoder_id=encoder.encoder_id,
        encoder_sha256=encoder.weights_sha256,
        encoder_provenance=encoder.provenance,
    )
    pred = PredictorConfig(
        num_patches=16, embed_dim=8, action_dim=4, proprio_dim=2, action_emb_dim=4,
        proprio_emb_dim=4, history=3, depth=2, heads=2, width=16, mlp_dim=32, dropout=0.0,
    )  # fmt: skip
    probe = ProbeConfig(16, 8, 2, len(labels), width=8, queries=2, heads=2, hidden=16)
    dec = DecoderConfig(16, 8, image_size=16, channels=16)
    stats = NormStats(
        action_mean=torch.zeros(4),
        action_std=torch.full((4,), 0.3),
        proprio_mean=torch.full((2,), 256.0),
        proprio_std=torch.full((2,), 50.0),
        state_mean=torch.full((len(labels),), 256.0),
        state_std=torch.ones(len(labels)),
    )
    torch.manual_seed(seed)
    model = WorldModel(spec, pred, probe, dec, stats=stats, encoder=encoder).eval()
    return ModelRegistry({LOAD_TEST_MODEL: LoadedModel(LOAD_TEST_MODEL, Path(), model, {})})


# ----- the server subprocess -----------------------------------------------------------------
def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rss_bytes(pid: int) -> int | None:
    """Resident set size of process ``pid`` from ``/proc`` (None where there is no /proc)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmRSS:\s+(\d+)\s+kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


@dataclass
class ServerProcess:
    """A planning service in a uvicorn subprocess on a loopback port, with a fresh API key."""

    tiny: bool = True
    models_dir: Path = Path("models")
    settings: dict[str, str] = field(default_factory=dict)
    key: str = field(default_factory=lambda: secrets.token_hex(16))
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        """Base URL of the service."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """Process id of the server."""
        if self.proc is None:
            raise RuntimeError("server is not started")
        return self.proc.pid

    def start(self) -> None:
        """Start the subprocess and wait until ``/v1/health`` answers."""
        env = {
            **os.environ,
            "WORLDPLAN_MODELS_DIR": str(self.models_dir),
            **self.settings,
            "WORLDPLAN_API_KEYS": json.dumps([self.key]),
        }
        cmd = [sys.executable, "-m", "server.bench", "serve", str(self.port)]
        fd, name = tempfile.mkstemp(prefix="worldplan-bench-server-", suffix=".log")
        self.log_path = Path(name)
        with os.fdopen(fd, "wb") as logf:
            self.proc = subprocess.Popen(
                [*cmd, "--tiny"] if self.tiny else cmd, env=env, stdout=logf, stderr=logf
            )
        self._wait_healthy()
        log.info("server pid %d up at %s", self.proc.pid, self.url)

    def _wait_healthy(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + _HEALTH_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(f"server exited early:\n{tail}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/v1/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        tail = self.log_tail()
        self.stop()
        raise RuntimeError(f"server not healthy after {_HEALTH_TIMEOUT_S} s:\n{tail}")

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's log."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]

    def rss(self) -> int | None:
        """The server's resident set size in bytes."""
        return rss_bytes(self.pid)

    def stop(self) -> None:
        """Terminate the server (kill it if it does not exit in 20 s) and remove its log."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)
            self.log_path = None

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _serve_child(argv: Sequence[str]) -> None:
    """``python -m server.bench serve PORT [--tiny]``: run the service on 127.0.0.1:PORT."""
    import uvicorn  # noqa: PLC0415

    from server.app import create_app  # noqa: PLC0415
    from server.settings import Settings  # noqa: PLC0415

    if len(argv) < 2 or argv[0] != "serve" or not argv[1].isdigit():
        raise SystemExit("usage: python -m server.bench serve PORT [--tiny]")
    registry = load_test_registry() if "--tiny" in argv[2:] else None
    app = create_app(Settings(), registry=registry)
    uvicorn.run(app, host="127.0.0.1", port=int(argv[1]), log_level="warning", access_log=False)


# ----- requests and metrics ------------------------------------------------------------------
def random_png_b64(size: int, seed: int) -> str:
    """A base64 PNG of uniform noise, ``size`` x ``size`` RGB."""
    arr = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def plan_body(
    model: str, *, image_size: int, planner: str, horizon: int, iterations: int, seed: int
) -> dict[str, Any]:
    """A JSON plan request with noise images and a small budget."""
    return {
        "model": model,
        "observation": random_png_b64(image_size, 2 * seed),
        "goal": random_png_b64(image_size, 2 * seed + 1),
        "planner": planner,
        "horizon": horizon,
        "budget": {"iterations": iterations},
        "seed": seed,
    }


_SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (\S+)$", re.MULTILINE)


def scrape(url: str) -> dict[str, float]:
    """The samples of ``/metrics`` by their name with labels, e.g. ``worldplan_batch_size_sum``."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return {m.group(1): float(m.group(2)) for m in _SAMPLE.finditer(text)}


def batch_stats(before: dict[str, float], after: dict[str, float]) -> tuple[float, float]:
    """Mean batch size and mean planner-call time (ms) between two scrapes (NaN if none)."""
    calls = after.get("worldplan_batch_size_count", 0) - before.get("worldplan_batch_size_count", 0)
    jobs = after.get("worldplan_batch_size_sum", 0) - before.get("worldplan_batch_size_sum", 0)
    key = 'worldplan_stage_seconds_sum{stage="plan"}'
    plan_s = after.get(key, 0.0) - before.get(key, 0.0)  # summed over requests
    if calls <= 0 or jobs <= 0:
        return float("nan"), float("nan")
    return jobs / calls, plan_s / jobs * 1000.0


# ----- load ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class LevelResult:
    """What one concurrency level measured."""

    concurrency: int
    seconds: float
    plans: int
    errors: int
    plans_per_s: float
    p50_ms: float
    p95_ms: float
    mean_batch: float
    call_ms: float  # mean planner-call time, per request
    rss_mb: float | None  # server RSS after the level
    error_samples: list[str] = field(default_factory=list)


@dataclass
class _Tally:
    remaining: int
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def take(self) -> bool:
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True


async def _client(client: httpx.AsyncClient, body: bytes, deadline: float, tally: _Tally) -> None:
    while time.perf_counter() < deadline and tally.take():
        t0 = time.perf_counter()
        try:
            r = await client.post("/v1/plan", content=body)
        except httpx.HTTPError as exc:
            tally.errors.append(f"{type(exc).__name__}: {exc}")
            continue
        if r.status_code == 200:
            tally.latencies.append(time.perf_counter() - t0)
        else:
            tally.errors.append(f"{r.status_code}: {r.text[:300]}")


async def drive(
    url: str, key: str, bodies: Sequence[bytes], duration_s: float, max_requests: int
) -> tuple[float, _Tally]:
    """Post plan requests from ``len(bodies)`` concurrent clients until the time or count runs out.

    Returns:
        Elapsed seconds (until the last answer) and the tally of latencies and errors.
    """
    tally = _Tally(max_requests)
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=len(bodies))
    timeout = httpx.Timeout(max(120.0, 2 * duration_s))
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=timeout
    ) as client:
        start = time.perf_counter()
        deadline = start + duration_s
        await asyncio.gather(*(_client(client, b, deadline, tally) for b in bodies))
        return time.perf_counter() - start, tally


def run_level(
    server: ServerProcess,
    body: dict[str, Any],
    concurrency: int,
    duration_s: float,
    max_requests: int,
) -> LevelResult:
    """One concurrency level against ``server``: each client posts ``body`` with its own seed."""
    bodies = [json.dumps({**body, "seed": i}).encode() for i in range(concurrency)]
    before = scrape(server.url)
    seconds, tally = asyncio.run(drive(server.url, server.key, bodies, duration_s, max_requests))
    mean_batch, call_ms = batch_stats(before, scrape(server.url))
    lat_ms = np.asarray(tally.latencies) * 1000.0
    rss = server.rss()
    return LevelResult(
        concurrency=concurrency,
        seconds=seconds,
        plans=len(tally.latencies),
        errors=len(tally.errors),
        plans_per_s=len(tally.latencies) / seconds if seconds > 0 else 0.0,
        p50_ms=float(np.percentile(lat_ms, 50)) if lat_ms.size else float("nan"),
        p95_ms=float(np.percentile(lat_ms, 95)) if lat_ms.size else float("nan"),
        mean_batch=mean_batch,
        call_ms=call_ms,
        rss_mb=None if rss is None else rss / 2**20,
        error_samples=tally.errors[:5],
    )


# ----- the benchmark -------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchConfig:
    """What ``worldplan bench server`` runs."""

    concurrency: tuple[int, ...] = (1, 2, 4, 8)
    duration_s: float = 60.0
    max_requests: int = 100_000
    tiny: bool = False
    models_dir: Path = Path("models")
    model: str | None = None
    planner: str = "cem"
    horizon: int = 3
    iterations: int = 3
    batch_window_ms: float = 5.0
    max_batch: int = 16
    threads: int = 1
    out: Path = Path("artifacts/bench/server.json")

    def __post_init__(self) -> None:
        if not self.concurrency or min(self.concurrency) < 1:
            raise ValueError(f"concurrency levels must be >= 1, got {self.concurrency}")
        if self.duration_s <= 0 or self.max_requests < 1:
            raise ValueError("duration must be > 0 s and max_requests >= 1")
        if self.planner not in ("cem", "mppi", "gradient"):
            raise ValueError(f"planner must be cem, mppi or gradient, got {self.planner!r}")

    def server_env(self) -> dict[str, str]:
        """The ``WORLDPLAN_*`` settings of the server subprocess."""
        return {
            "WORLDPLAN_MODELS_DIR": str(self.models_dir),
            "WORLDPLAN_BATCH_WINDOW_MS": str(self.batch_window_ms),
            "WORLDPLAN_MAX_BATCH": str(self.max_batch),
            "WORLDPLAN_TORCH_THREADS": str(self.threads),
        }


def pick_model(server: ServerProcess, wanted: str | None) -> tuple[str, int]:
    """The model to load-test (``wanted`` or the first loaded) and its image size."""
    r = httpx.get(f"{server.url}/v1/models", headers={"X-API-Key": server.key}, timeout=30)
    r.raise_for_status()
    models = {m["name"]: int(m["image_size"]) for m in r.json()}
    if not models:
        raise ValueError("the server loaded no model: train bundles or pass --tiny")
    name = wanted or sorted(models)[0]
    if name not in models:
        raise ValueError(f"unknown model {name!r}; loaded: {', '.join(sorted(models))}")
    return name, models[name]


def warm_up(server: ServerProcess, body: dict[str, Any]) -> None:
    """One plan request, so that the first timed one pays no start-up cost.

    Raises:
        RuntimeError: the request failed (its status and message are in the error).
    """
    r = httpx.post(
        f"{server.url}/v1/plan", json=body, headers={"X-API-Key": server.key}, timeout=300
    )
    if r.status_code != 200:
        raise RuntimeError(f"warm-up plan request failed: {r.status_code} {r.text[:500]}")


def run_bench(config: BenchConfig) -> list[LevelResult]:
    """Start the server, warm it up, run every concurrency level, write the JSON."""
    results: list[LevelResult] = []
    server = ServerProcess(config.tiny, config.models_dir, settings=config.server_env())
    with server:
        name, size = pick_model(server, config.model)
        body = plan_body(
            name,
            image_size=size,
            planner=config.planner,
            horizon=config.horizon,
            iterations=config.iterations,
            seed=0,
        )
        warm_up(server, body)
        for c in config.concurrency:
            log.info("concurrency %d for %.0f s ...", c, config.duration_s)
            res = run_level(server, body, c, config.duration_s, config.max_requests)
            log.info("concurrency %d: %.2f plans/s, batch %.2f", c, res.plans_per_s, res.mean_batch)
            results.append(res)
    write_json(config.out, _payload(config, name, results))
    return results


def ratio(results: Sequence[LevelResult], high: int, low: int = 1) -> float | None:
    """plans/s at ``high`` clients over plans/s at ``low`` clients (None if either is missing)."""
    by_c = {r.concurrency: r.plans_per_s for r in results}
    if high not in by_c or low not in by_c or by_c[low] <= 0:
        return None
    return by_c[high] / by_c[low]


def _payload(config: BenchConfig, model: str, results: list[LevelResult]) -> dict[str, Any]:
    settings = asdict(config)
    settings["models_dir"] = str(config.models_dir)
    settings["out"] = str(config.out)
    return {
        "benchmark": "server",
        "config": settings,
        "model": model,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "levels": [asdict(r) for r in results],
        "ratio_8_to_1": ratio(results, 8),
    }


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as JSON through a temporary file and a rename (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, allow_nan=True) + "\n")
    tmp.replace(path)


def format_table(results: Sequence[LevelResult]) -> str:
    """The results as a fixed-width text table."""
    head = (
        f"{'clients':>7} {'plans':>6} {'plans/s':>8} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'errors':>6} {'batch':>6} {'call ms':>8} {'rss MB':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        rss = "-" if r.rss_mb is None else f"{r.rss_mb:.0f}"
        lines.append(
            f"{r.concurrency:>7} {r.plans:>6} {r.plans_per_s:>8.2f} {r.p50_ms:>8.0f} "
            f"{r.p95_ms:>8.0f} {r.errors:>6} {r.mean_batch:>6.2f} {r.call_ms:>8.0f} {rss:>7}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    _serve_child(sys.argv[1:])
