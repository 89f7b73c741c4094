"""Hard-coded guardrails per environment, tightening by requests, and the final plan check.

Guardrails bound what a plan may do in physical units:

* every env action lies in the box ``[action_low, action_high]`` and its largest
  step (the L2 norm of the action, or for a stroke the length ``|end - start|``)
  is at most ``max_step``;
* every tracked position probed from an imagined state (the pairs
  ``<name>_x, <name>_y`` of the model's ``state_labels``) stays inside the
  ``workspace`` box and outside every keep-out box and circle.

They act in three places: actions are clamped onto the bounds, imagined states
pay ``penalty`` per unit of violation (see :mod:`planner.constraints`), and the
returned plan is checked again by :func:`check_plan`.

Units, per env id (positions are those of the env's ``get_state``):

* ``worldplan/PushT-v0``: an env action is the pusher's relative displacement
  in units of 100 px, in ``[-1, 1]^2``, at most 1.0 (100 px per 0.1 s step: the
  pusher's speed limit) long; agent and
  block positions in px, workspace ``[0, 512]^2``.
* ``worldplan/Maze-v0``, ``layout="umaze"`` (D4RL PointMaze U-maze
  ``#####/#GOO#/###O#/#OOO#/#####``): action = force in ``[-1, 1]^2``, at most
  1.0 long; positions in maze units with free cells centred on integer
  coordinates, ``x`` = row index, ``y`` = column index (D4RL's convention); the
  workspace is the inside of the border walls ``[0.5, 3.5]^2`` and the inner
  wall cells (2, 1) and (2, 2) are a keep-out box ``x in [1.5, 2.5], y in [0.5, 2.5]``.
* ``worldplan/Maze-v0``, ``layout="tworoom"``: action = displacement in units of
  2 px, in ``[-1, 1]^2``, at most 1.0 long; positions in px of the 65 x 65 px world;
  workspace between the border walls ``[4, 60]^2``; the dividing wall is 6 px wide,
  centred on ``wall_x``, with a door ``|y - door_y| <= 4`` (two keep-out boxes).
* ``worldplan/Granular-v0``: action = one stroke ``(x0, y0, x1, y1)`` in normalised
  table coordinates ``[-1, 1]^4`` (world = 2.6 x action), at most 2.0 long
  (5.2 table units); every probed position pair (``p000_x, p000_y``, ...,
  ``pusher_x, pusher_y``) stays on the table ``[-3, 3]^2`` in table units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

StepKind = Literal["vector", "stroke"]
ALL_POINTS = "*"
"""Entry of :attr:`Guardrails.points` that tracks every ``<name>_x, <name>_y`` label pair."""


class GuardrailError(ValueError):
    """A guardrail request is malformed or would loosen a hard bound."""


def _finite(field: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value)):
        raise GuardrailError(f"{field} must be a finite number, got {value!r}")


@dataclass(frozen=True)
class Box2D:
    """An axis-aligned box in the plane, ``[x_min, x_max] x [y_min, y_max]``."""

    x_min: float
    y_min: float
    x_max: float
    y_max: float

    def __post_init__(self) -> None:
        for name in ("x_min", "y_min", "x_max", "y_max"):
            _finite(name, getattr(self, name))
        if self.x_min >= self.x_max or self.y_min >= self.y_max:
            raise GuardrailError(
                f"box needs x_min < x_max and y_min < y_max, got {self.as_tuple()}"
            )

    def as_tuple(self) -> tuple[float, float, float, float]:
        """``(x_min, y_min, x_max, y_max)``."""
        return (self.x_min, self.y_min, self.x_max, self.y_max)


@dataclass(frozen=True)
class Circle:
    """A disc in the plane."""

    x: float
    y: float
    radius: float

    def __post_init__(self) -> None:
        for name in ("x", "y", "radius"):
            _finite(name, getattr(self, name))
        if self.radius <= 0:
            raise GuardrailError(f"circle radius must be > 0, got {self.radius!r}")


@dataclass(frozen=True)
class GuardrailRequest:
    """What a request may ask for: tighter bounds and extra keep-out zones (``None``: keep)."""

    action_low: tuple[float, ...] | None = None
    action_high: tuple[float, ...] | None = None
    max_step: float | None = None
    workspace: Box2D | None = None
    keep_out_boxes: tuple[Box2D, ...] = ()
    keep_out_circles: tuple[Circle, ...] = ()


@dataclass(frozen=True)
class Guardrails:
    """The bounds of one environment (see the module docstring for units)."""

    env_id: str
    """The env these bounds belong to; a model for another env is refused."""
    action_low: tuple[float, ...]
    """Lower bound of each entry of one env action."""
    action_high: tuple[float, ...]
    """Upper bound of each entry of one env action."""
    max_step: float
    """Largest L2 length of one env action (a speed limit) or of one stroke."""
    step_kind: StepKind
    """``vector``: the action is a displacement or force; ``stroke``: ``(x0, y0, x1, y1)``."""
    workspace: Box2D
    """Where every tracked position must stay."""
    points: tuple[str, ...]
    """Tracked positions: ``name`` stands for the labels ``name_x, name_y``; ``*`` for all."""
    keep_out_boxes: tuple[Box2D, ...] = ()
    """Boxes no tracked position may enter (walls)."""
    keep_out_circles: tuple[Circle, ...] = ()
    """Discs no tracked position may enter."""
    penalty: float = 1000.0
    """Cost per unit of state violation added to every imagined sample."""

    def __post_init__(self) -> None:
        if len(self.action_low) != len(self.action_high) or not self.action_low:
            raise GuardrailError(
                f"action_low and action_high need the same non-zero length, got "
                f"{len(self.action_low)} and {len(self.action_high)}"
            )
        for i, (lo, hi) in enumerate(zip(self.action_low, self.action_high, strict=True)):
            _finite(f"action_low[{i}]", lo)
            _finite(f"action_high[{i}]", hi)
            if lo > hi:
                raise GuardrailError(f"action_low[{i}] = {lo} exceeds action_high[{i}] = {hi}")
        _finite("max_step", self.max_step)
        if self.max_step <= 0:
            raise GuardrailError(f"max_step must be > 0, got {self.max_step}")
        if self.step_kind == "stroke" and len(self.action_low) != 4:
            raise GuardrailError("a stroke action is (x0, y0, x1, y1): 4 dims")
        if self.step_kind == "vector" and not all(
            lo <= 0 <= hi for lo, hi in zip(self.action_low, self.action_high, strict=True)
        ):
            raise GuardrailError(
                "the action box must contain the zero action (standing still must stay "
                f"allowed), got low {self.action_low} high {self.action_high}"
            )

    @property
    def env_action_dim(self) -> int:
        """Dimension of one env action."""
        return len(self.action_low)

    def tighten(self, request: GuardrailRequest) -> Guardrails:
        """Apply a request's tighter bounds and extra zones; refuse any loosening.

        Raises:
            GuardrailError: naming the field, the requested and the hard value.
        """
        low, high = self.action_low, self.action_high
        if request.action_low is not None:
            low = _tighter_vector("action_low", request.action_low, low, raise_only=True)
        if request.action_high is not None:
            high = _tighter_vector("action_high", request.action_high, high, raise_only=False)
        max_step = self.max_step
        if request.max_step is not None:
            _finite("max_step", request.max_step)
            if request.max_step > self.max_step:
                raise GuardrailError(
                    f"max_step = {request.max_step} would loosen the hard bound "
                    f"{self.max_step}; a request may only lower it (<= {self.max_step})"
                )
            max_step = request.max_step
        workspace = self.workspace
        if request.workspace is not None:
            _check_inside(request.workspace, self.workspace)
            workspace = request.workspace
        return replace(
            self,
            action_low=low,
            action_high=high,
            max_step=max_step,
            workspace=workspace,
            keep_out_boxes=self.keep_out_boxes + tuple(request.keep_out_boxes),
            keep_out_circles=self.keep_out_circles + tuple(request.keep_out_circles),
        )


def _tighter_vector(
    field: str, asked: tuple[float, ...], hard: tuple[float, ...], *, raise_only: bool
) -> tuple[float, ...]:
    if len(asked) != len(hard):
        raise GuardrailError(f"{field} needs {len(hard)} values, got {len(asked)}")
    for i, (a, h) in enumerate(zip(asked, hard, strict=True)):
        _finite(f"{field}[{i}]", a)
        if (raise_only and a < h) or (not raise_only and a > h):
            rule = f">= {h}" if raise_only else f"<= {h}"
            raise GuardrailError(
                f"{field}[{i}] = {a} would loosen the hard bound {h}; a request may only "
                f"tighten it ({rule})"
            )
    return tuple(float(a) for a in asked)


def _check_inside(asked: Box2D, hard: Box2D) -> None:
    for name, sign in (("x_min", 1), ("y_min", 1), ("x_max", -1), ("y_max", -1)):
        a, h = getattr(asked, name), getattr(hard, name)
        if sign * (a - h) < 0:
            rule = f">= {h}" if sign > 0 else f"<= {h}"
            raise GuardrailError(
                f"workspace.{name} = {a} would loosen the hard bound {h}; a request may "
                f"only shrink the workspace ({rule})"
            )


def _pusht() -> Guardrails:
    return Guardrails(
        env_id="worldplan/PushT-v0",
        action_low=(-1.0, -1.0),
        action_high=(1.0, 1.0),
        max_step=1.0,
        step_kind="vector",
        workspace=Box2D(0.0, 0.0, 512.0, 512.0),
        points=("agent", "block"),
    )


def _maze(layout: str, wall_x: float, door_y: float) -> Guardrails:
    if layout == "umaze":
        return Guardrails(
            env_id="worldplan/Maze-v0",
            action_low=(-1.0, -1.0),
            action_high=(1.0, 1.0),
            max_step=1.0,
            step_kind="vector",
            workspace=Box2D(0.5, 0.5, 3.5, 3.5),
            points=("agent",),
            keep_out_boxes=(Box2D(1.5, 0.5, 2.5, 2.5),),
        )
    if layout == "tworoom":
        if not (20 <= wall_x <= 44 and 10 <= door_y <= 54):
            raise GuardrailError(
                f"tworoom needs wall_x in [20, 44] and door_y in [10, 54], got {wall_x}, {door_y}"
            )
        return Guardrails(
            env_id="worldplan/Maze-v0",
            action_low=(-1.0, -1.0),
            action_high=(1.0, 1.0),
            max_step=1.0,
            step_kind="vector",
            workspace=Box2D(4.0, 4.0, 60.0, 60.0),
            points=("agent",),
            keep_out_boxes=(
                Box2D(wall_x - 3.0, 4.0, wall_x + 3.0, door_y - 4.0),
                Box2D(wall_x - 3.0, door_y + 4.0, wall_x + 3.0, 60.0),
            ),
        )
    raise GuardrailError(f"maze layout must be 'umaze' or 'tworoom', got {layout!r}")


def _granular() -> Guardrails:
    return Guardrails(
        env_id="worldplan/Granular-v0",
        action_low=(-1.0, -1.0, -1.0, -1.0),
        action_high=(1.0, 1.0, 1.0, 1.0),
        max_step=2.0,
        step_kind="stroke",
        workspace=Box2D(-3.0, -3.0, 3.0, 3.0),
        points=(ALL_POINTS,),
    )


def guardrails_for(
    env_id: str, *, layout: str = "umaze", wall_x: float = 32.0, door_y: float = 32.0
) -> Guardrails:
    """The hard guardrails of an environment.

    Args:
        env_id: A registered env id, e.g. ``"worldplan/PushT-v0"``.
        layout: Maze only: ``"umaze"`` or ``"tworoom"``.
        wall_x: Maze two-room only: centre of the dividing wall (px).
        door_y: Maze two-room only: centre of the door (px).

    Raises:
        GuardrailError: for an unknown env id or maze layout.
    """
    if env_id == "worldplan/PushT-v0":
        return _pusht()
    if env_id == "worldplan/Maze-v0":
        return _maze(layout, wall_x, door_y)
    if env_id == "worldplan/Granular-v0":
        return _granular()
    raise GuardrailError(
        f"no guardrails for env id {env_id!r}; known: worldplan/PushT-v0, "
        "worldplan/Maze-v0, worldplan/Granular-v0"
    )


def point_label_pairs(
    points: tuple[str, ...], state_labels: tuple[str, ...]
) -> list[tuple[str, int, int]]:
    """``(name, x index, y index)`` of each tracked position present in ``state_labels``."""
    index = {label: i for i, label in enumerate(state_labels)}
    names = list(points)
    if ALL_POINTS in names:
        names = [label[:-2] for label in state_labels if label.endswith("_x")]
    return [
        (name, index[f"{name}_x"], index[f"{name}_y"])
        for name in names
        if f"{name}_x" in index and f"{name}_y" in index
    ]
