"""Simulated worlds for worldplan: push-T, maze and granular, as Gymnasium envs.

Importing this package registers the environments:

* ``worldplan/PushT-v0``: push a T-shaped block onto a goal pose with a circular pusher.
* ``worldplan/Maze-v0``: a point agent in a U-maze (``layout="umaze"``) or the
  two-room wall-with-door world (``layout="tworoom"``).
* ``worldplan/Granular-v0``: gather small discs into a target configuration with
  straight pusher strokes.
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

ENV_IDS: tuple[str, ...] = ("worldplan/PushT-v0", "worldplan/Maze-v0", "worldplan/Granular-v0")

_ENTRY_POINTS = {
    "worldplan/PushT-v0": ("sims.pusht:PushTEnv", 300),
    "worldplan/Maze-v0": ("sims.maze:MazeEnv", 300),
    "worldplan/Granular-v0": ("sims.granular:GranularEnv", 20),
}

for _env_id, (_entry, _steps) in _ENTRY_POINTS.items():
    if _env_id not in registry:
        register(id=_env_id, entry_point=_entry, max_episode_steps=_steps)

__all__ = ["ENV_IDS"]
