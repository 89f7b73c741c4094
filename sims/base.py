"""Pieces shared by the worldplan envs: action validation and anti-aliased drawing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import gymnasium as gym
import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

# Sub-pixel precision for cv2 drawing: coordinates are scaled by 2**SHIFT.
SHIFT = 4
_SCALE = 1 << SHIFT


@dataclass(frozen=True)
class CheckedAction:
    """An action after validation: the value to apply and whether it was clipped."""

    value: NDArray[np.float64]
    clipped: bool


def check_action(action: object, space: spaces.Box) -> CheckedAction:
    """Validate an action against a Box space.

    Wrong shape or non-finite values raise ``ValueError``: they would silently
    corrupt the physics. Finite values outside the box are clipped to it (the
    documented behaviour of every worldplan env) and reported as ``clipped``.

    Args:
        action: Anything ``np.asarray`` accepts.
        space: The env's action space.

    Returns:
        The action as float64, clipped into the box, and whether it was clipped.
    """
    arr = np.asarray(action)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"action must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.shape != space.shape:
        raise ValueError(f"action must have shape {space.shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"action must be finite, got {arr.tolist()}")
    low = space.low.astype(np.float64)
    high = space.high.astype(np.float64)
    clipped = np.clip(arr, low, high)
    return CheckedAction(value=clipped, clipped=bool(np.any(clipped != arr)))


def to_fixed(points: NDArray[np.floating]) -> NDArray[np.int32]:
    """Convert float pixel coordinates to cv2's fixed-point integers (see ``SHIFT``)."""
    return np.round(np.asarray(points, dtype=np.float64) * _SCALE).astype(np.int32)


def fill_polygon(
    img: NDArray[np.uint8], points: NDArray[np.floating], color: tuple[int, int, int]
) -> None:
    """Draw a filled, anti-aliased polygon given float pixel coordinates (K, 2)."""
    cv2.fillPoly(img, [to_fixed(points).reshape(-1, 1, 2)], color, cv2.LINE_AA, SHIFT)


def fill_circle(
    img: NDArray[np.uint8],
    center: NDArray[np.floating] | tuple[float, float],
    radius: float,
    color: tuple[int, int, int],
) -> None:
    """Draw a filled, anti-aliased circle given float pixel coordinates."""
    c = to_fixed(np.asarray(center, dtype=np.float64))
    r = round(radius * _SCALE)
    cv2.circle(img, (int(c[0]), int(c[1])), max(r, 1), color, -1, cv2.LINE_AA, SHIFT)


def draw_line(
    img: NDArray[np.uint8],
    start: NDArray[np.floating] | tuple[float, float],
    end: NDArray[np.floating] | tuple[float, float],
    color: tuple[int, int, int],
    thickness: int = 1,
) -> None:
    """Draw an anti-aliased line given float pixel coordinates."""
    a = to_fixed(np.asarray(start, dtype=np.float64))
    b = to_fixed(np.asarray(end, dtype=np.float64))
    cv2.line(
        img, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), color, thickness, cv2.LINE_AA, SHIFT
    )


class WorldEnv(gym.Env[dict[str, NDArray[Any]], NDArray[np.float32]]):
    """The contract every worldplan env follows on top of the Gymnasium API.

    * ``reset(seed=, options=)``: ``options`` may hold ``"state"`` (start state) and
      ``"goal_state"`` (the goal the success check compares against).
    * Observation: ``{"pixels": uint8 (H, W, 3), "proprio": float32 (P,)}``.
    * ``step`` validates the action with :func:`check_action` (wrong shape or
      non-finite raises ``ValueError``; out-of-box is clipped and reported in
      ``info["action_clipped"]``).
    * ``info`` always has ``"is_success"``, the task metric (its name in
      ``metric_name``) and ``"state"`` (a copy of :meth:`get_state`).
    * :meth:`get_state` / :meth:`set_state` round-trip the full physical state as a
      flat float64 vector whose entries are named by ``state_labels``; after
      ``set_state(goal)`` the success check holds.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 10}  # noqa: RUF012
    #: Names of the entries of the flat state vector.
    state_labels: tuple[str, ...] = ()
    #: Key of the task metric in ``info`` (e.g. ``"coverage"``, ``"distance"``, ``"chamfer"``).
    metric_name: str = ""

    def get_state(self) -> NDArray[np.float64]:
        """Return the full physical state as a flat float64 vector."""
        raise NotImplementedError

    def set_state(self, state: NDArray[np.floating]) -> None:
        """Put the simulation into ``state`` (as returned by :meth:`get_state`)."""
        raise NotImplementedError

    @property
    def goal_state(self) -> NDArray[np.float64]:
        """The goal state the success check compares against."""
        raise NotImplementedError

    def evaluate_state(
        self, state: NDArray[np.floating], goal: NDArray[np.floating]
    ) -> dict[str, float | bool]:
        """Score ``state`` against ``goal``: ``{"is_success": ..., metric_name: ...}``."""
        raise NotImplementedError
