"""Timing core of ``worldplan bench sims``, also run as a script inside peer venvs.

The same :func:`measure` loop times our envs (imported from ``sims.bench``) and
the peer envs (this file run by path with a peer venv's interpreter), so both
sides are measured identically. As a script it needs only the standard
library, numpy, gymnasium, Pillow and the peer package; it imports nothing from
the project. It writes one JSON document to stdout; anything the peer libraries
print goes to stderr.

Usage (inside a peer venv)::

    python sims/_peer_bench.py --case swm/PushT-v1 --size 96 --size 224 --steps 500
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray

#: A function returning the frame to time after each step: ``(env, obs) -> (H, W, 3) uint8``.
FrameFn = Callable[[gym.Env[Any, Any], Any], NDArray[np.uint8]]


@dataclass(frozen=True)
class Timing:
    """Rates of one measured configuration, per second: wall-clock and process CPU time.

    CPU-time rates (``cpu_*``) count only the time this process ran, so they hold
    steady when other jobs share the machine; wall-clock rates are what a user of an
    idle machine sees.
    """

    runs: tuple[float, ...]
    cpu_runs: tuple[float, ...]
    steps: int

    @property
    def median(self) -> float:
        """Median wall-clock rate over the repeats."""
        return statistics.median(self.runs)

    @property
    def cpu_median(self) -> float:
        """Median CPU-time rate over the repeats."""
        return statistics.median(self.cpu_runs)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "median_per_s": self.median,
            "runs_per_s": list(self.runs),
            "cpu_median_per_s": self.cpu_median,
            "cpu_runs_per_s": list(self.cpu_runs),
            "steps": self.steps,
        }


def set_threads(threads: int) -> None:
    """Limit the numeric libraries that are already imported to ``threads`` threads."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    cv2 = sys.modules.get("cv2")
    if cv2 is not None:
        cv2.setNumThreads(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


def _clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _time_one_repeat(
    env: gym.Env[Any, Any],
    frame: FrameFn | None,
    *,
    steps: int,
    warmup: int,
    seed: int,
    size: int | None,
) -> tuple[float, float]:
    """Time ``steps`` random steps after ``warmup`` untimed ones; resets are not timed.

    Returns:
        Steps per second of wall-clock time and of process CPU time.
    """
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(warmup + steps)]
    obs, _ = env.reset(seed=seed)
    if frame is not None:
        _check_frame(frame(env, obs), size)
    wall = cpu = 0.0
    start: tuple[float, float] | None = None
    for i, action in enumerate(actions):
        if i == warmup:
            start = _clocks()
        obs, _, terminated, truncated, _ = env.step(action)
        if frame is not None:
            frame(env, obs)
        if terminated or truncated:
            if start is not None:
                now = _clocks()
                wall, cpu = wall + now[0] - start[0], cpu + now[1] - start[1]
            obs, _ = env.reset(seed=seed + 100_000 * (i + 1))
            start = None if start is None else _clocks()
    assert start is not None  # steps >= 1, so the timed span was opened
    now = _clocks()
    wall, cpu = wall + now[0] - start[0], cpu + now[1] - start[1]
    return steps / wall, steps / max(cpu, 1e-9)


def _check_frame(image: object, size: int | None) -> None:
    """Raise unless ``image`` is a (size, size, 3) uint8 array: rates at unequal sizes mislead."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3:
        got = getattr(image, "shape", type(image).__name__)
        raise ValueError(f"frame must be an (H, W, 3) uint8 array, got {got}")
    if size is not None and image.shape != (size, size, 3):
        raise ValueError(f"frame must be {(size, size, 3)} to compare, got {image.shape}")


def measure(
    make_env: Callable[[], gym.Env[Any, Any]],
    frame: FrameFn | None,
    *,
    steps: int,
    warmup: int,
    repeats: int,
    seed: int,
    size: int | None = None,
) -> Timing:
    """Time an env under seeded random actions: steps (and frames) per second.

    Args:
        make_env: Builds the env (made once, reset with a fixed seed per repeat).
        frame: Returns the rendered frame after each step, timed with the step;
            ``None`` times the step alone.
        steps: Timed steps per repeat.
        warmup: Untimed steps before them in each repeat.
        repeats: Number of repeats; the median is reported.
        seed: Base seed; repeat ``r`` resets with and samples actions from ``seed + r``.
        size: Expected frame side in pixels (checked on the first frame).

    Returns:
        Every repeat's rate, wall-clock and CPU time (medians as properties).
    """
    if steps < 1 or warmup < 0 or repeats < 1:
        raise ValueError(
            f"need steps >= 1, warmup >= 0, repeats >= 1; got {steps}, {warmup}, {repeats}"
        )
    env = make_env()
    try:
        rates = [
            _time_one_repeat(env, frame, steps=steps, warmup=warmup, seed=seed + r, size=size)
            for r in range(repeats)
        ]
    finally:
        env.close()
    return Timing(runs=tuple(w for w, _ in rates), cpu_runs=tuple(c for _, c in rates), steps=steps)


def pil_resize(image: NDArray[np.uint8], size: int) -> NDArray[np.uint8]:
    """Resize to ``size`` x ``size`` with PIL bilinear, as stable-worldmodel's wrapper does."""
    if image.shape[:2] == (size, size):
        return image
    from PIL import Image  # noqa: PLC0415 (only the peer cases that resize need it)

    resized: NDArray[np.uint8] = np.asarray(
        Image.fromarray(np.ascontiguousarray(image)).resize((size, size), Image.Resampling.BILINEAR)
    )
    return resized


# --- peer cases -------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerCase:
    """How to time one peer env: its package, how to make it and how to get a frame."""

    package: str
    #: Module whose import registers ``env_id`` (``"package"`` import), or the module
    #: holding the env class (``"env-module"`` import, see :func:`import_env_module`).
    module: str
    env_id: str
    entry_point: str
    import_mode: str
    state_kwargs: dict[str, Any]
    #: kwargs of the rendering env; ``"{size}"`` values are replaced by the image size.
    pixel_kwargs: dict[str, Any]
    #: ``"obs"``: the observation is the frame; ``"render"``: ``env.render()``, resized.
    frame_from: str
    sizing: str


PEER_CASES: dict[str, PeerCase] = {
    "gym_pusht/PushT-v0": PeerCase(
        package="gym-pusht",
        module="gym_pusht",
        env_id="gym_pusht/PushT-v0",
        entry_point="gym_pusht.envs:PushTEnv",
        import_mode="package",
        state_kwargs={"obs_type": "state"},
        pixel_kwargs={
            "obs_type": "pixels",
            "observation_width": "{size}",
            "observation_height": "{size}",
        },
        frame_from="obs",
        sizing="obs_type=pixels, observation_width/height=S: pygame 512 px + cv2.resize to S",
    ),
    "swm/PushT-v1": PeerCase(
        package="stable-worldmodel",
        module="stable_worldmodel.envs.pusht.env",
        env_id="swm/PushT-v1",
        entry_point="stable_worldmodel.envs.pusht.env:PushT",
        import_mode="env-module",
        state_kwargs={},
        pixel_kwargs={"resolution": "{size}"},
        frame_from="render",
        sizing="step + render(), resolution=S: pygame 512 px + cv2.resize to S",
    ),
    "swm/TwoRoom-v1": PeerCase(
        package="stable-worldmodel",
        module="stable_worldmodel.envs.two_room.env",
        env_id="swm/TwoRoom-v1",
        entry_point="stable_worldmodel.envs.two_room.env:TwoRoomEnv",
        import_mode="env-module",
        state_kwargs={},
        pixel_kwargs={},
        frame_from="render",
        sizing="step + render(): fixed 224 px (torch), PIL bilinear resize to S if S != 224",
    ),
    "swm/SimplePointMaze-v0": PeerCase(
        package="stable-worldmodel",
        module="stable_worldmodel.envs.simple_point_maze",
        env_id="swm/SimplePointMaze-v0",
        entry_point="stable_worldmodel.envs.simple_point_maze:SimplePointMazeEnv",
        import_mode="env-module",
        state_kwargs={"render_mode": "rgb_array"},
        pixel_kwargs={"render_mode": "rgb_array"},
        frame_from="render",
        sizing="step + render(): matplotlib 500 px, PIL bilinear resize to S",
    ),
}


#: Modules the stable-worldmodel envs reach through the package object (``swm.utils``).
_SWM_SUPPORT = ("stable_worldmodel.spaces", "stable_worldmodel.utils")


def import_env_module(module: str) -> None:
    """Import ``module`` without running the ``__init__`` of the packages above it.

    stable-worldmodel 0.1.1 imports its training stack (torchvision among it) from its
    package ``__init__`` files. PyPI's torchvision wheels link the CUDA build of torch
    and fail to load against the CPU build, so the peer envs (which use neither) are
    imported as modules under bare parent packages instead.
    """
    parts = module.split(".")
    for depth in range(1, len(parts)):
        name = ".".join(parts[:depth])
        if name in sys.modules:
            continue
        spec = importlib.util.find_spec(name)
        if spec is None or spec.submodule_search_locations is None:
            raise ModuleNotFoundError(f"package {name!r} not found; is the peer installed?")
        bare = types.ModuleType(name)
        bare.__path__ = list(spec.submodule_search_locations)
        bare.__spec__ = spec
        sys.modules[name] = bare
        if depth > 1:
            setattr(sys.modules[".".join(parts[: depth - 1])], parts[depth - 1], bare)
    importlib.import_module(module)  # also sets it as an attribute of its parent


def load_case(case: PeerCase) -> None:
    """Import the peer's code so that ``case.env_id`` can be made."""
    if case.import_mode == "package":
        importlib.import_module(case.module)
    else:
        for module in (*_SWM_SUPPORT, case.module):
            import_env_module(module)
    if case.env_id not in gym.registry:
        gym.register(id=case.env_id, entry_point=case.entry_point)


def _peer_kwargs(case: PeerCase, size: int) -> dict[str, Any]:
    return {k: size if v == "{size}" else v for k, v in case.pixel_kwargs.items()}


def _peer_frame(case: PeerCase, size: int) -> FrameFn:
    if case.frame_from == "obs":
        return lambda _env, obs: np.asarray(obs)
    return lambda env, _obs: pil_resize(np.asarray(env.render()), size)


def run_peer_case(
    name: str, sizes: list[int], *, steps: int, warmup: int, repeats: int, seed: int
) -> list[dict[str, Any]]:
    """Time one peer env without rendering, then rendering at each size."""
    if name not in PEER_CASES:
        raise ValueError(f"unknown peer case {name!r}; known: {', '.join(sorted(PEER_CASES))}")
    case = PEER_CASES[name]
    load_case(case)
    common = {"steps": steps, "warmup": warmup, "repeats": repeats, "seed": seed}

    def make(kwargs: dict[str, Any]) -> Callable[[], gym.Env[Any, Any]]:
        return lambda: gym.make(case.env_id, disable_env_checker=True, **kwargs)

    state = measure(make(case.state_kwargs), None, **common)
    rows = [{"case": name, "mode": "state", "size": None, **state.to_json()}]
    for size in sizes:
        pixels = measure(
            make(_peer_kwargs(case, size)), _peer_frame(case, size), size=size, **common
        )
        rows.append({"case": name, "mode": "pixels", "size": size, **pixels.to_json()})
    return rows


def package_versions(packages: list[str]) -> dict[str, str | None]:
    """Installed version of each distribution, None for those not installed."""
    found: dict[str, str | None] = {}
    for pkg in packages:
        try:
            found[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            found[pkg] = None
    return found


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Time peer envs; writes JSON to stdout.")
    parser.add_argument("--case", action="append", required=True, choices=sorted(PEER_CASES))
    parser.add_argument("--size", action="append", type=int, required=True)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run the requested peer cases and write one JSON document to stdout."""
    args = _parse_args(argv)
    out = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):  # peers print banners; keep stdout JSON only
        for name in args.case:
            load_case(PEER_CASES[name])
        set_threads(args.threads)
        results = [
            row
            for name in args.case
            for row in run_peer_case(
                name,
                args.size,
                steps=args.steps,
                warmup=args.warmup,
                repeats=args.repeats,
                seed=args.seed,
            )
        ]
    packages = sorted({PEER_CASES[n].package for n in args.case})
    doc = {
        "python": platform.python_version(),
        "versions": package_versions(
            [*packages, "pymunk", "pygame", "gymnasium", "numpy", "torch"]
        ),
        "sizing": {name: PEER_CASES[name].sizing for name in args.case},
        "import_mode": {name: PEER_CASES[name].import_mode for name in args.case},
        "results": results,
    }
    out.write(json.dumps(doc) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
