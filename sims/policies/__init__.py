"""Data-collection policies for the worldplan envs: a scripted one and a random one per env.

Each env has a module here (``pusht``, ``maze``, ``granular``) defining
``ScriptedPolicy`` and ``RandomPolicy``; both take the env at construction and
follow :class:`Policy`. Scripted policies may read the privileged simulator
state (``env.unwrapped.get_state()``): they exist to collect diverse,
task-relevant data, not to be evaluated.
"""

from __future__ import annotations

import importlib
from typing import Any, Literal, Protocol

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray

PolicyKind = Literal["scripted", "random"]

_MODULES = {
    "worldplan/PushT-v0": "sims.policies.pusht",
    "worldplan/Maze-v0": "sims.policies.maze",
    "worldplan/Granular-v0": "sims.policies.granular",
}


class Policy(Protocol):
    """A data-collection policy."""

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode; ``seed`` makes the policy's own randomness repeatable."""

    def __call__(self, obs: dict[str, NDArray[Any]], info: dict[str, Any]) -> NDArray[np.float32]:
        """Return the next action for ``obs`` (``info`` is the env's last info dict)."""
        ...


def make_policy(
    env: gym.Env[Any, Any], kind: PolicyKind, seed: int | None = None, **options: Any
) -> Policy:
    """Build the ``kind`` policy for ``env`` (a made worldplan env, wrapped or not).

    ``options`` go to the policy's constructor (e.g. push-T's scripted ``speed``).
    """
    if env.spec is None or env.spec.id not in _MODULES:
        known = ", ".join(sorted(_MODULES))
        raise ValueError(f"no policies for env {getattr(env.spec, 'id', None)!r}; known: {known}")
    module = importlib.import_module(_MODULES[env.spec.id])
    names = {"scripted": "ScriptedPolicy", "random": "RandomPolicy"}
    if kind not in names:
        raise ValueError(f"policy kind must be 'scripted' or 'random', got {kind!r}")
    policy: Policy = getattr(module, names[kind])(env, **options)
    policy.reset(seed)
    return policy
