"""``worldplan bench sims``: steps/s and rendered frames/s of our envs and of their peers.

Our envs are timed in this process; each peer (gym-pusht, stable-worldmodel) in a
benchmark-only virtual environment that is created on demand under a cache
folder, by running ``sims/_peer_bench.py`` with that venv's interpreter. Both
sides use the same timing loop (:func:`sims._peer_bench.measure`): a fixed seed
per repeat, seeded random actions sampled before timing, warm-up steps, resets
left out of the timing, the median over repeats. Each repeat is a round that
times our envs and then each peer, and every rate is kept both in wall-clock and
in process CPU time (the table shows CPU time by default: on a shared machine it
does not swing with other jobs' load).

* steps/s: ``step()`` without pixels, where the env can turn them off.
* frames/s: ``step()`` plus a frame of ``image_size`` x ``image_size`` pixels.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import gymnasium as gym

from sims._peer_bench import PEER_CASES, measure, package_versions, set_threads

logger = logging.getLogger(__name__)

PEER_SCRIPT = Path(__file__).with_name("_peer_bench.py")
DEFAULT_VENV_DIR = Path("artifacts/bench-venvs")
DEFAULT_JSON = Path("artifacts/bench/sims.json")
#: Constructor keyword arguments that turn pixels off, tried in order.
STATE_ONLY_SWITCHES: tuple[dict[str, Any], ...] = ({"render_pixels": False}, {"obs_type": "state"})
#: Image size asked of an env whose pixels are off (its placeholder frame stays tiny).
STATE_ONLY_IMAGE_SIZE = 16
_MARKER = ".worldplan-bench.json"


@dataclass(frozen=True)
class OurCase:
    """One of our envs as benchmarked: id, constructor kwargs and the peer cases to compare."""

    key: str
    env_id: str
    kwargs: dict[str, Any]
    #: ``(peer venv name, peer case id in sims._peer_bench.PEER_CASES)``.
    peers: tuple[tuple[str, str], ...] = ()
    #: What one step is, where it is more than one control tick.
    note: str = ""


OUR_CASES: tuple[OurCase, ...] = (
    OurCase(
        "pusht",
        "worldplan/PushT-v0",
        {},
        (("gym-pusht", "gym_pusht/PushT-v0"), ("stable-worldmodel", "swm/PushT-v1")),
    ),
    OurCase(
        "maze-umaze",
        "worldplan/Maze-v0",
        {"layout": "umaze"},
        (("stable-worldmodel", "swm/SimplePointMaze-v0"),),
    ),
    OurCase(
        "maze-tworoom",
        "worldplan/Maze-v0",
        {"layout": "tworoom"},
        (("stable-worldmodel", "swm/TwoRoom-v1"),),
    ),
    OurCase(
        "granular",
        "worldplan/Granular-v0",
        {},
        note="1 step = 1 pusher stroke (many physics substeps)",
    ),
)


@dataclass(frozen=True)
class PeerVenv:
    """A benchmark-only virtual environment holding one peer package."""

    name: str
    requirements: tuple[str, ...]
    needs_torch: bool


PEER_VENVS: dict[str, PeerVenv] = {
    "gym-pusht": PeerVenv("gym-pusht", ("gym-pusht==0.1.8",), needs_torch=False),
    "stable-worldmodel": PeerVenv(
        "stable-worldmodel", ("stable-worldmodel[env]==0.1.1",), needs_torch=True
    ),
}


@dataclass(frozen=True)
class BenchConfig:
    """Settings of one benchmark run (validated on construction)."""

    image_sizes: tuple[int, ...] = (96, 224)
    steps: int = 500
    warmup: int = 50
    repeats: int = 5
    seed: int = 0
    threads: int = 1
    peers: bool = True
    venv_dir: Path = DEFAULT_VENV_DIR
    torch_spec: str = "torch==2.13.0"
    #: Which rates the table shows: ``"cpu"`` (process CPU time; steady on a shared
    #: machine) or ``"wall"`` (wall-clock). The JSON always has both.
    clock: str = "cpu"
    envs: tuple[str, ...] = field(default_factory=lambda: tuple(c.key for c in OUR_CASES))

    def __post_init__(self) -> None:
        if not self.image_sizes or any(s < 16 or s > 4096 for s in self.image_sizes):
            raise ValueError(f"image sizes must be in [16, 4096], got {list(self.image_sizes)}")
        if self.steps < 1 or self.warmup < 0 or self.repeats < 1 or self.threads < 1:
            raise ValueError(
                "need steps >= 1, warmup >= 0, repeats >= 1, threads >= 1; got "
                f"{self.steps}, {self.warmup}, {self.repeats}, {self.threads}"
            )
        if self.clock not in ("cpu", "wall"):
            raise ValueError(f"clock must be 'cpu' or 'wall', got {self.clock!r}")
        known = [c.key for c in OUR_CASES]
        unknown = [e for e in self.envs if e not in known]
        if unknown or not self.envs:
            raise ValueError(f"envs must be among {known}, got {list(self.envs)}")

    @property
    def cases(self) -> tuple[OurCase, ...]:
        """The selected env cases, in table order."""
        return tuple(c for c in OUR_CASES if c.key in self.envs)


class PeerError(RuntimeError):
    """A peer venv could not be built or its benchmark script failed."""


# --- our envs -------------------------------------------------------------------------


def state_only_kwargs(env_id: str) -> dict[str, Any] | None:
    """Return the constructor kwargs that turn pixels off, or None when the env has none."""
    entry = gym.spec(env_id).entry_point
    creator = gym.envs.registration.load_env_creator(entry) if isinstance(entry, str) else entry
    if creator is None:
        return None
    params = inspect.signature(creator).parameters
    for switch in STATE_ONLY_SWITCHES:
        if all(name in params for name in switch):
            return dict(switch)
    return None


def bench_ours(case: OurCase, config: BenchConfig) -> dict[str, Any]:
    """Time one of our envs: without pixels (if it can) and rendering at each size.

    An env whose module does not exist yet, or that raises while being timed, is
    reported (``available`` False, ``error``) and logged, so the other rows still come.
    """
    result: dict[str, Any] = {"key": case.key, "env_id": case.env_id, "kwargs": case.kwargs}
    try:
        switch = state_only_kwargs(case.env_id)
    except (ImportError, AttributeError) as exc:  # env module not written yet
        logger.warning("%s: not available (%s)", case.key, exc)
        return {**result, "available": False, "error": f"{type(exc).__name__}: {exc}"}
    try:
        timed = _time_ours(case, config, switch)
    except Exception as exc:  # any env bug becomes a reported row, not a lost run
        logger.exception("%s: failed while timing", case.key)
        return {**result, "available": False, "error": f"{type(exc).__name__}: {exc}"}
    return {**result, "available": True, "state_switch": switch, **timed}


def _time_ours(case: OurCase, config: BenchConfig, switch: dict[str, Any] | None) -> dict[str, Any]:
    set_threads(config.threads)  # again: the env module may just have imported cv2
    common = {
        "steps": config.steps,
        "warmup": config.warmup,
        "repeats": config.repeats,
        "seed": config.seed,
    }

    def make(kwargs: dict[str, Any]) -> Any:
        return lambda: gym.make(case.env_id, disable_env_checker=True, **case.kwargs, **kwargs)

    state = None
    if switch is not None:
        state = measure(make({**switch, "image_size": STATE_ONLY_IMAGE_SIZE}), None, **common)
    pixels = {
        size: measure(
            make({"image_size": size}), lambda _env, obs: obs["pixels"], size=size, **common
        ).to_json()
        for size in config.image_sizes
    }
    return {"state": None if state is None else state.to_json(), "pixels": pixels}


# --- peer venvs -----------------------------------------------------------------------


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _wanted_marker(peer: PeerVenv, torch_spec: str) -> dict[str, Any]:
    return {
        "requirements": list(peer.requirements),
        "torch": torch_spec if peer.needs_torch else None,
        "python": platform.python_version(),
    }


def _pip(python: Path, args: list[str], log_path: Path) -> None:
    """Run ``python -m pip args`` niced, appending output to ``log_path``."""
    cmd = [str(python), "-m", "pip", "install", "--disable-pip-version-check", *args]
    with log_path.open("a", encoding="utf-8") as log:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        done = subprocess.run(
            ["nice", "-n", "10", *cmd], stdout=log, stderr=subprocess.STDOUT, check=False
        )
    if done.returncode != 0:
        tail = log_path.read_text(encoding="utf-8").splitlines()[-15:]
        raise PeerError(f"pip {' '.join(args)} failed; see {log_path}:\n" + "\n".join(tail))


def _check_cpu_torch(python: Path, torch_spec: str) -> str:
    """Return the version of the torch in ``python``'s venv; raise unless it is CPU-only."""
    probe = "import torch; print(torch.__version__, torch.version.cuda)"
    done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=False)
    version, _, cuda = done.stdout.strip().partition(" ")
    if done.returncode != 0 or cuda != "None":
        raise PeerError(
            f"{torch_spec!r} gave torch {version or '?'} with CUDA {cuda or '?'}; the bench "
            "needs a CPU build: make a CPU wheel visible to pip (PIP_FIND_LINKS) and name "
            "it with --torch-spec"
        )
    return version


def ensure_peer_venv(peer: PeerVenv, venv_dir: Path, torch_spec: str) -> Path:
    """Return the interpreter of ``peer``'s venv, creating and installing it if needed.

    torch (if the peer needs it) is installed first as ``torch_spec`` and then held
    there by a constraints file, so that the peer's own requirements never pull a
    second (CUDA) build. A marker file records what was installed; a venv whose
    marker differs is rebuilt from scratch.
    """
    venv = venv_dir / peer.name
    marker = venv / _MARKER
    wanted = _wanted_marker(peer, torch_spec)
    if marker.is_file() and json.loads(marker.read_text(encoding="utf-8")) == wanted:
        return _venv_python(venv)
    logger.info("creating benchmark venv %s (installs take minutes)", venv)
    venv_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    python = _venv_python(venv)
    log_path = venv / "install.log"
    constraints: list[str] = []
    if peer.needs_torch:
        logger.info("%s: installing %s", peer.name, torch_spec)
        _pip(python, [torch_spec], log_path)
        version = _check_cpu_torch(python, torch_spec)
        pin = venv / "constraints.txt"
        pin.write_text(f"torch=={version}\n", encoding="utf-8")
        constraints = ["-c", str(pin)]
    logger.info("%s: installing %s", peer.name, " ".join(peer.requirements))
    _pip(python, [*constraints, *peer.requirements], log_path)
    marker.write_text(json.dumps(wanted), encoding="utf-8")
    return python


def _peer_env(threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(
        PYGAME_HIDE_SUPPORT_PROMPT="1",
        MPLBACKEND="Agg",
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        OPENBLAS_NUM_THREADS=str(threads),
    )
    return env


def run_peer(
    peer: PeerVenv, python: Path, case_ids: list[str], config: BenchConfig
) -> dict[str, Any]:
    """Time ``case_ids`` with ``python`` (``peer``'s venv); returns the script's JSON document."""
    cmd = [str(python), "-P", str(PEER_SCRIPT)]
    cmd += [arg for case in case_ids for arg in ("--case", case)]
    cmd += [arg for size in config.image_sizes for arg in ("--size", str(size))]
    cmd += ["--steps", str(config.steps), "--warmup", str(config.warmup)]
    cmd += ["--repeats", str(config.repeats), "--seed", str(config.seed)]
    cmd += ["--threads", str(config.threads)]
    logger.info("%s: timing %s", peer.name, ", ".join(case_ids))
    done = subprocess.run(
        cmd, capture_output=True, text=True, env=_peer_env(config.threads), check=False
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.splitlines()[-15:])
        raise PeerError(f"{peer.name} benchmark exited {done.returncode}:\n{tail}")
    try:
        doc: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError) as exc:
        raise PeerError(f"{peer.name} benchmark printed no JSON: {done.stdout[-500:]!r}") from exc
    return doc


def _peer_groups(cases: Iterable[OurCase]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for case in cases:
        for venv_name, case_id in case.peers:
            if case_id not in groups.setdefault(venv_name, []):
                groups[venv_name].append(case_id)
    return groups


def prepare_peers(config: BenchConfig) -> tuple[dict[str, Path], dict[str, str]]:
    """Build (or reuse) the venv of every peer the selected envs compare against.

    Returns:
        The interpreter of each ready peer, and the error of each peer that failed.
    """
    ready: dict[str, Path] = {}
    failed: dict[str, str] = {}
    for venv_name in _peer_groups(config.cases):
        try:
            ready[venv_name] = ensure_peer_venv(
                PEER_VENVS[venv_name], config.venv_dir, config.torch_spec
            )
        except (PeerError, OSError, subprocess.SubprocessError) as exc:
            logger.error("peer %s: venv failed: %s", venv_name, exc)
            failed[venv_name] = str(exc)
    return ready, failed


def bench_peers(config: BenchConfig, ready: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Time every peer case in ``ready`` venvs, one subprocess per venv."""
    out: dict[str, dict[str, Any]] = {}
    for venv_name, case_ids in _peer_groups(config.cases).items():
        if venv_name not in ready:
            continue
        try:
            out[venv_name] = run_peer(PEER_VENVS[venv_name], ready[venv_name], case_ids, config)
        except (PeerError, OSError, subprocess.SubprocessError) as exc:
            logger.error("peer %s failed: %s", venv_name, exc)
            out[venv_name] = {"error": str(exc)}
    return out


# --- the run, the rows and the table --------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of the table: one env at one image size against one peer (or none)."""

    env: str
    image_size: int
    ours_steps: float | None
    ours_frames: float | None
    peer: str | None
    peer_steps: float | None
    peer_frames: float | None
    peer_sizing: str | None
    note: str = ""

    @property
    def frames_ratio(self) -> float | None:
        """Our frames/s over the peer's, at the same image size."""
        return _ratio(self.ours_frames, self.peer_frames)

    @property
    def steps_ratio(self) -> float | None:
        """Our steps/s over the peer's, both without pixels."""
        return _ratio(self.ours_steps, self.peer_steps)


def _ratio(ours: float | None, peer: float | None) -> float | None:
    return None if ours is None or peer is None or peer <= 0 else ours / peer


def _median(timing: dict[str, Any] | None, clock: str) -> float | None:
    key = "cpu_median_per_s" if clock == "cpu" else "median_per_s"
    return None if timing is None else float(timing[key])


def _peer_rates(
    doc: dict[str, Any], case_id: str, size: int, clock: str
) -> tuple[float | None, float | None]:
    state = pixels = None
    for res in doc.get("results", []):
        if res["case"] == case_id and res["mode"] == "state":
            state = _median(res, clock)
        if res["case"] == case_id and res["mode"] == "pixels" and res["size"] == size:
            pixels = _median(res, clock)
    return state, pixels


def build_rows(
    ours: list[dict[str, Any]], peers: dict[str, dict[str, Any]], config: BenchConfig
) -> list[Row]:
    """Turn raw results into table rows (peers that were skipped or failed are marked)."""
    rows: list[Row] = []
    for case, res in zip(config.cases, ours, strict=True):
        for size in config.image_sizes:
            available = res["available"]
            o_steps = _median(res.get("state"), config.clock) if available else None
            o_frames = _median(res["pixels"][size], config.clock) if available else None
            note = case.note if available else f"not timed: {res['error']}"
            if not case.peers or not config.peers:
                rows.append(Row(case.key, size, o_steps, o_frames, None, None, None, None, note))
                continue
            for venv_name, case_id in case.peers:
                doc = peers.get(venv_name, {})
                p_steps, p_frames = _peer_rates(doc, case_id, size, config.clock)
                sizing = doc.get("sizing", {}).get(case_id)
                peer_note = "peer failed" if "error" in doc else ""
                rows.append(
                    Row(
                        case.key,
                        size,
                        o_steps,
                        o_frames,
                        case_id,
                        p_steps,
                        p_frames,
                        sizing,
                        "; ".join(n for n in (note, peer_note) if n),
                    )
                )
    return rows


def _merge_timings(timings: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Pool single-repeat timings from several rounds into one (all runs, their medians)."""
    present = [t for t in timings if t is not None]
    if not present or len(present) != len(timings):
        return None
    runs = [r for t in present for r in t["runs_per_s"]]
    cpu_runs = [r for t in present for r in t["cpu_runs_per_s"]]
    return {
        "median_per_s": statistics.median(runs),
        "runs_per_s": runs,
        "cpu_median_per_s": statistics.median(cpu_runs),
        "cpu_runs_per_s": cpu_runs,
        "steps": present[0]["steps"],
    }


def _merge_ours(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool the rounds of one of our envs."""
    first = rounds[0]
    if not first["available"]:
        return first
    return {
        **first,
        "state": _merge_timings([r["state"] for r in rounds]),
        "pixels": {
            size: _merge_timings([r["pixels"][size] for r in rounds]) for size in first["pixels"]
        },
    }


def _merge_peer(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool the rounds of one peer venv (any failed round fails the peer)."""
    errors = [r["error"] for r in rounds if "error" in r]
    if errors:
        return {"error": errors[0]}
    pooled: dict[tuple[str, str, int | None], list[dict[str, Any]]] = {}
    for doc in rounds:
        for res in doc["results"]:
            pooled.setdefault((res["case"], res["mode"], res["size"]), []).append(res)
    results = [
        {"case": case, "mode": mode, "size": size, **(_merge_timings(list(group)) or {})}
        for (case, mode, size), group in pooled.items()
    ]
    return {**rounds[0], "results": results}


def _machine() -> dict[str, Any]:
    packages = ("pymunk", "gymnasium", "numpy", "opencv-python-headless")
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0],
        "versions": package_versions(list(packages)),
    }


def run_bench(config: BenchConfig) -> dict[str, Any]:
    """Run the whole benchmark and return everything as one JSON-ready document.

    Each repeat is a round that times our envs and then every peer once, so that a
    change of load on the machine hits both sides of a ratio alike; the rounds are
    pooled into medians.
    """
    set_threads(config.threads)
    from tqdm import tqdm  # noqa: PLC0415 (only the run needs it)

    ready, failed = prepare_peers(config) if config.peers else ({}, {})
    ours_rounds: list[list[dict[str, Any]]] = []
    peer_rounds: list[dict[str, dict[str, Any]]] = []
    for r in tqdm(range(config.repeats), desc="rounds", unit="round", file=sys.stderr):
        one = replace(config, repeats=1, seed=config.seed + r)
        previous = ours_rounds[0] if ours_rounds else [{"available": True}] * len(config.cases)
        ours_rounds.append(
            [
                bench_ours(case, one) if prev["available"] else prev
                for case, prev in zip(config.cases, previous, strict=True)
            ]
        )
        peer_rounds.append(bench_peers(one, ready))
    ours = [_merge_ours(list(per_case)) for per_case in zip(*ours_rounds, strict=True)]
    peers = {name: _merge_peer([rnd[name] for rnd in peer_rounds]) for name in ready}
    peers.update({name: {"error": err} for name, err in failed.items()})
    rows = build_rows(ours, peers, config)
    return {
        "config": {**asdict(config), "venv_dir": str(config.venv_dir)},
        "machine": _machine(),
        "ours": ours,
        "peers": peers,
        "rows": [
            {**asdict(r), "frames_ratio": r.frames_ratio, "steps_ratio": r.steps_ratio}
            for r in rows
        ],
    }


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:,.0f}"


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x"


_CLOCK_NOTE = {
    "cpu": "Rates per second of process CPU time (steady when the machine is shared; "
    "--clock wall for wall-clock).",
    "wall": "Rates per second of wall-clock time (--clock cpu for process CPU time).",
}


def format_table(rows: list[dict[str, Any]], clock: str = "cpu") -> str:
    """Plain aligned text: one line per row of :func:`run_bench`'s ``rows``, then notes."""
    header = (
        "env",
        "image",
        "ours steps/s",
        "ours frames/s",
        "peer",
        "peer steps/s",
        "peer frames/s",
        "ratio frames",
        "ratio steps",
        "note",
    )
    lines = [header]
    for r in rows:
        lines.append(
            (
                r["env"],
                str(r["image_size"]),
                "n/a" if r["ours_steps"] is None and r["ours_frames"] else _fmt(r["ours_steps"]),
                _fmt(r["ours_frames"]),
                r["peer"] or "-",
                _fmt(r["peer_steps"]),
                _fmt(r["peer_frames"]),
                _fmt_ratio(r["frames_ratio"]),
                _fmt_ratio(r["steps_ratio"]),
                r["note"],
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    ]
    text.insert(1, "  ".join("-" * w for w in widths))
    text += ["", _CLOCK_NOTE[clock] + " Medians over the repeats; ratio = ours / peer."]
    sizing = {r["peer"]: r["peer_sizing"] for r in rows if r["peer"] and r["peer_sizing"]}
    notes = [f"  {peer}: {how}" for peer, how in sizing.items()]
    if notes:
        text += [
            "",
            "How each peer gets an S x S frame (ours: drawn directly at S with OpenCV):",
            *notes,
        ]
    if any(r["ours_steps"] is None and r["ours_frames"] is not None for r in rows):
        text += [
            "",
            "ours steps/s n/a: the env has no switch to turn pixels off (step always renders).",
        ]
    return "\n".join(text)


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` to ``path`` atomically (temp file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


__all__ = [
    "OUR_CASES",
    "PEER_CASES",
    "PEER_VENVS",
    "BenchConfig",
    "OurCase",
    "PeerError",
    "Row",
    "bench_ours",
    "build_rows",
    "ensure_peer_venv",
    "format_table",
    "run_bench",
    "write_json",
]
