"""Request and response bodies of the HTTP API (v1)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

OptimiserName = Literal["cem", "gradient", "mppi"]


def validation_detail(errors: Iterable[Mapping[str, Any]]) -> str:
    """One ``detail`` line from pydantic's errors: ``field.path: message; ...``."""
    parts = [
        f"{'.'.join(str(p) for p in err.get('loc', ())) or 'body'}: {err.get('msg', 'invalid')}"
        for err in errors
    ]
    return "; ".join(parts) or "invalid request"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BoxSpec(_Strict):
    """An axis-aligned box in the env's position units."""

    x_min: float = Field(allow_inf_nan=False)
    y_min: float = Field(allow_inf_nan=False)
    x_max: float = Field(allow_inf_nan=False)
    y_max: float = Field(allow_inf_nan=False)


class CircleSpec(_Strict):
    """A disc in the env's position units."""

    x: float = Field(allow_inf_nan=False)
    y: float = Field(allow_inf_nan=False)
    radius: float = Field(gt=0, allow_inf_nan=False)


class GuardrailTightening(_Strict):
    """Tighter bounds and extra keep-out zones; anything looser is refused with 422."""

    action_low: list[float] | None = Field(default=None, max_length=16)
    action_high: list[float] | None = Field(default=None, max_length=16)
    max_step: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    workspace: BoxSpec | None = None
    keep_out_boxes: list[BoxSpec] = Field(default_factory=list, max_length=32)
    keep_out_circles: list[CircleSpec] = Field(default_factory=list, max_length=32)

    @field_validator("action_low", "action_high")
    @classmethod
    def _finite(cls, values: list[float] | None) -> list[float] | None:
        if values is not None and not all(math.isfinite(v) for v in values):
            raise ValueError("action bounds must be finite numbers")
        return values


class BudgetSpec(_Strict):
    """How much planning one request may spend; the first limit reached stops it."""

    iterations: int | None = Field(default=None, ge=1, description="Optimiser iterations.")
    milliseconds: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, description="Wall time for the optimiser."
    )
    patience: int | None = Field(
        default=None, ge=1, description="Stop after this many iterations without improvement."
    )


class WarmStart(_Strict):
    """Seed this plan with the previous one, shifted by the steps executed since.

    The previous plan may have another horizon: its unexecuted steps are cut at this
    request's horizon or padded with its last step.
    """

    token: str = Field(min_length=1, max_length=64, description="warm_start_token of a plan.")
    executed_steps: int = Field(default=1, ge=0, le=64, description="Planning steps executed.")


class PlanOptions(_Strict):
    """Everything about a plan request except the two images."""

    model: str = Field(
        min_length=1, max_length=64, description="Model bundle name (GET /v1/models)."
    )
    proprio: list[float] | None = Field(
        default=None, max_length=64, description="Proprio of the observation, env units."
    )
    goal_proprio: list[float] | None = Field(
        default=None, max_length=64, description="Proprio of the goal, env units."
    )
    proprio_weight: float | None = Field(
        default=None,
        ge=0,
        le=100,
        allow_inf_nan=False,
        description="Weight of the distance to goal_proprio in the cost (normalised units; "
        "DINO-WM's alpha). Needs goal_proprio. Default: the env's default when goal_proprio "
        "is sent, else 0.",
    )
    planner: OptimiserName = "cem"
    horizon: int | None = Field(default=None, ge=1, le=16, description="Planning steps.")
    samples: int | None = Field(
        default=None,
        ge=2,
        le=1024,
        description="Sequences per iteration: CEM/MPPI samples (elites are a tenth, at least "
        "1) or gradient restarts. Default: the optimiser's (CEM 300, MPPI 512, gradient 8).",
    )
    noise_beta: float | None = Field(
        default=None,
        ge=0,
        le=4,
        allow_inf_nan=False,
        description="CEM only: colour of the sampling noise along the env steps, power "
        "spectral density 1/f^noise_beta (0: white, as DINO-WM; 2: iCEM's smooth pushes). "
        "Default: the service's.",
    )
    keep_elites: float | None = Field(
        default=None,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="CEM only: fraction of an iteration's elites carried into the next "
        "iteration's samples (iCEM: 0.3). Default: the service's.",
    )
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    guardrails: GuardrailTightening | None = None
    warm_start: WarmStart | None = None
    door_y: float | None = Field(
        default=None,
        ge=10,
        le=54,
        allow_inf_nan=False,
        description="Two-room maze only: the door's centre (px); it places the wall guardrail.",
    )
    door_waypoint: bool = Field(
        default=True,
        description="Two-room maze only (ignored elsewhere): while the wall separates the "
        "proprio from the goal_proprio, the proprio cost aims just past the door on the "
        "goal's side instead of at the goal (the response's waypoint). Needs both proprios.",
    )

    @field_validator("proprio", "goal_proprio")
    @classmethod
    def _finite(cls, values: list[float] | None) -> list[float] | None:
        if values is not None and not all(math.isfinite(v) for v in values):
            raise ValueError("proprio must be finite numbers (no NaN or infinity)")
        return values


class PlanRequestJSON(PlanOptions):
    """A plan request with base64 images (PNG, JPEG or .npy)."""

    observation: str = Field(min_length=1, description="Base64 PNG/JPEG/.npy, HxWx3 uint8 RGB.")
    goal: str = Field(min_length=1, description="Base64 PNG/JPEG/.npy, HxWx3 uint8 RGB.")


class Timing(_Strict):
    """Where the time of one request went (milliseconds)."""

    queue_ms: float
    encode_ms: float
    plan_ms: float
    total_ms: float


class PlanResponse(_Strict):
    """A plan that passed the final guardrail check."""

    plan_id: str
    model: str
    env_id: str
    planner: OptimiserName
    actions: list[list[float]] = Field(
        description="Env actions in env units, (horizon x frameskip) rows of env_action_dim."
    )
    frameskip: int
    cost: float
    objective: float
    iterations: int
    stopped_because: str
    warm_started: bool
    guardrails_active: list[str]
    waypoint: list[float] | None = Field(
        default=None,
        description="Where the proprio cost aimed (env units) when not at goal_proprio: "
        "the two-room door's far side while the wall is in the way.",
    )
    timing: Timing
    warm_start_token: str
    preview_url: str


class PlanRecord(PlanResponse):
    """A stored plan with its optimisation trace."""

    trace: list[float]
    trace_ms: list[float]
    predicted_states: dict[str, list[float]] = Field(
        description="Probed physical state of each imagined step, by state label."
    )


class ModelInfo(_Strict):
    """One loaded model bundle."""

    name: str
    env_id: str
    env_kwargs: dict[str, str | float | int]
    image_size: int
    env_action_dim: int
    frameskip: int
    history: int
    proprio_dim: int
    encoder_id: str
    state_labels: list[str]
    metrics: dict[str, float]


class EncoderInfo(_Strict):
    """The frozen encoder behind the loaded models."""

    encoder_id: str
    weights_sha256: str
    provenance: str


class Health(_Strict):
    """Liveness and what is loaded."""

    status: Literal["ok"]
    version: str
    device: str
    encoders: list[EncoderInfo]
    models: list[str]


class ErrorBody(_Strict):
    """Every 4xx/5xx body."""

    detail: str
