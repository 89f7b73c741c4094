"""Peer side of ``worldplan bench planner --model bundle``: stable-worldmodel's solvers.

Run with the interpreter of the benchmark-only stable-worldmodel venv, with this
repository on ``PYTHONPATH`` (only ``world_model`` and ``planner.objective`` are
imported; their dependencies are torch, numpy, einops and safetensors)::

    python -P planner/_swm_peer.py --bundle DIR --pairs FILE --samples 300 ...

It loads our model from a bundle folder (:func:`world_model.bundle.load_bundle`),
wraps rollout + objective as a stable-worldmodel ``Costable``
(:class:`LatentCostable`), runs ``CEMSolver``, ``MPPISolver`` and
``GradientSolver`` on every (observation, goal) pair, one pair per ``solve``
call, and prints one JSON line on stdout: per solver and pair, the wall and
process CPU time and the returned plan in env units. The solvers' own prints go to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import sys
import time
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor

from planner.config import ObjectiveConfig
from planner.objective import latent_cost
from world_model.types import Latent, LatentModel

#: Keys of the pairs file: (P, T0, N, D), (P, T0, Pp), (P, 1, N, D), (P, 1, Pp).
PAIR_KEYS = ("obs_visual", "obs_proprio", "goal_visual", "goal_proprio")
SOLVERS = ("cem", "mppi", "gd")


class LatentCostable:
    """stable-worldmodel's ``Costable`` over our model: rollout, then the latent objective.

    The solvers search in normalised action space (z-scored with the model's
    statistics, where N(0, 1) is the data's spread, as DINO-WM does); the adapter
    maps candidates back to env units before the rollout. ``info_dict`` holds the
    pair's latents, which the solvers expand to ``(B, S, ...)``.
    """

    def __init__(self, model: LatentModel, objective: ObjectiveConfig) -> None:
        self.model = model
        self.objective = objective

    def to_env(self, x: Tensor) -> Tensor:
        """Normalised actions (..., A) -> env units."""
        return x * self.model.action_std + self.model.action_mean

    def get_cost(self, info_dict: dict[str, Tensor], action_candidates: Tensor) -> Tensor:
        """Cost (B, S) of candidates (B, S, H, A) from the latents in ``info_dict``."""
        b, s = action_candidates.shape[:2]

        def flat(key: str) -> Tensor:
            v = info_dict[key]  # (B, S, T, ...)
            return v.reshape(b * s, *v.shape[2:])  # (B*S, T, ...)

        start = Latent(flat("obs_visual"), flat("obs_proprio"))
        goal = Latent(flat("goal_visual"), flat("goal_proprio"))
        actions = self.to_env(action_candidates).reshape(b * s, *action_candidates.shape[2:])
        pred = self.model.rollout(start, actions)  # (B*S, H, ...)
        return latent_cost(self.objective, pred, goal).reshape(b, s)  # (B, S)

    def criterion(self, info_dict: dict[str, Tensor], action_candidates: Tensor) -> Tensor:
        """Same as :meth:`get_cost` (the protocol names both)."""
        return self.get_cost(info_dict, action_candidates)


def make_solver(name: str, costable: LatentCostable, args: argparse.Namespace, seed: int) -> Any:
    """A configured stable-worldmodel solver with the shared settings, their defaults elsewhere."""
    from gymnasium.spaces import Box  # noqa: PLC0415 - only in the peer venv

    from sims._peer_bench import import_env_module  # noqa: PLC0415

    # Skips stable_worldmodel/__init__ (it imports torchvision, which fails on CPU torch).
    import_env_module("stable_worldmodel.solver")
    solver_mod = sys.modules["stable_worldmodel.solver"]
    common = {"device": "cpu", "seed": seed}
    if name == "cem":
        solver = solver_mod.CEMSolver(
            costable,
            batch_size=1,
            num_samples=args.samples,
            n_steps=args.iterations,
            topk=args.elites,
            var_scale=1.0,
            **common,
        )
    elif name == "mppi":
        solver = solver_mod.MPPISolver(
            costable,
            batch_size=1,
            num_samples=args.samples,
            n_steps=args.iterations,
            topk=args.elites,
            var_scale=1.0,
            temperature=0.5,
            **common,
        )
    else:
        solver = solver_mod.GradientSolver(
            costable,
            n_steps=args.grad_iterations,
            batch_size=1,
            num_samples=args.restarts,
            var_scale=1.0,
            **common,
        )
    env_a = costable.model.env_action_dim
    space = Box(-float("inf"), float("inf"), shape=(1, env_a))
    config = SimpleNamespace(horizon=args.horizon, action_block=costable.model.frameskip)
    solver.configure(action_space=space, n_envs=1, config=config)
    return solver


def solve_pairs(
    solver: Any, costable: LatentCostable, pairs: dict[str, Tensor], indices: list[int]
) -> list[dict[str, Any]]:
    """Time one ``solve`` per pair in ``indices``: wall and CPU ms, the plan (H, A) env units."""
    out: list[dict[str, Any]] = []
    for i in indices:
        info = {k: pairs[k][i : i + 1] for k in PAIR_KEYS}  # batch of one env
        with contextlib.redirect_stdout(sys.stderr):
            t0, c0 = time.perf_counter(), time.process_time()
            result = solver.solve(info)
            ms, cpu_ms = (time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3
        plan = costable.to_env(result["actions"][0].detach().float())  # (H, A)
        out.append({"ms": ms, "cpu_ms": cpu_ms, "actions": plan.tolist()})
    return out


def _versions() -> dict[str, str]:
    out = {}
    for dist in ("stable-worldmodel", "torch"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "?"
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the solvers named on the command line; return (and print) the JSON document."""
    from safetensors.torch import load_file  # noqa: PLC0415

    from world_model.bundle import load_bundle  # noqa: PLC0415

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", required=True)
    p.add_argument("--pairs", required=True, help="safetensors file with the latent pairs")
    p.add_argument("--solver", action="append", choices=SOLVERS, default=[])
    p.add_argument("--index", action="append", type=int, default=[], help="pairs (default all)")
    for name, default in (
        ("samples", 300),
        ("elites", 30),
        ("iterations", 30),
        ("grad-iterations", 100),
        ("restarts", 8),
        ("horizon", 5),
        ("threads", 1),
        ("seed", 0),
    ):
        p.add_argument(f"--{name}", type=int, default=default)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_bundle(args.bundle, load_encoder=False)
    costable = LatentCostable(model, ObjectiveConfig())
    pairs = load_file(args.pairs)
    warm = torch.zeros(1, 1, args.horizon, model.action_dim, requires_grad=True)
    for _ in range(2):  # warm-up, forward and backward, as the in-process side has had
        cost = costable.get_cost({k: v[:1, None] for k, v in pairs.items()}, warm)
        torch.autograd.grad(cost.sum(), warm)
    torch.optim.SGD([warm], lr=0.0)  # the first optimiser of a process imports torch._dynamo
    doc: dict[str, Any] = {"versions": _versions(), "threads": args.threads, "solvers": {}}
    indices = args.index or list(range(pairs["obs_visual"].shape[0]))
    for name in args.solver or list(SOLVERS):
        doc["solvers"][name] = []
        for i in indices:  # a fresh solver per pair, seeded by the pair's index
            solver = make_solver(name, costable, args, seed=args.seed + i)
            doc["solvers"][name] += solve_pairs(solver, costable, pairs, [i])
    sys.stdout.write(json.dumps(doc) + "\n")
    return doc


if __name__ == "__main__":
    main()
