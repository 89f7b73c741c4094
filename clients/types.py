"""Typed request and response bodies of the HTTP API (v1), as a client sees them.

These mirror the server's schemas without importing the server: requests are
strict (a typo in an option fails here, before a round trip), responses ignore
fields this client does not know yet so that a newer server stays usable.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PlannerName = Literal["cem", "gradient", "mppi"]
PreviewFormat = Literal["html", "png", "gif"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Box(_Request):
    """An axis-aligned box in the env's position units."""

    x_min: float = Field(allow_inf_nan=False)
    y_min: float = Field(allow_inf_nan=False)
    x_max: float = Field(allow_inf_nan=False)
    y_max: float = Field(allow_inf_nan=False)


class Circle(_Request):
    """A disc in the env's position units."""

    x: float = Field(allow_inf_nan=False)
    y: float = Field(allow_inf_nan=False)
    radius: float = Field(gt=0, allow_inf_nan=False)


class Guardrails(_Request):
    """Tighter bounds and extra keep-out zones (the server refuses anything looser)."""

    action_low: list[float] | None = None
    action_high: list[float] | None = None
    max_step: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    workspace: Box | None = None
    keep_out_boxes: list[Box] = Field(default_factory=list)
    keep_out_circles: list[Circle] = Field(default_factory=list)


class Budget(_Request):
    """How much planning one request may spend; the first limit reached stops it."""

    iterations: int | None = Field(default=None, ge=1)
    milliseconds: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    patience: int | None = Field(default=None, ge=1)


class WarmStart(_Request):
    """Seed a plan with a previous one, shifted by the planning steps executed since."""

    token: str = Field(min_length=1, max_length=64)
    executed_steps: int = Field(default=1, ge=0, le=64)


class PlanOptions(_Request):
    """Everything about a plan request except the two images."""

    model: str = Field(min_length=1, max_length=64)
    proprio: list[float] | None = None
    goal_proprio: list[float] | None = None
    proprio_weight: float | None = Field(default=None, ge=0, le=100, allow_inf_nan=False)
    planner: PlannerName = "cem"
    horizon: int | None = Field(default=None, ge=1, le=16)
    samples: int | None = Field(default=None, ge=2, le=1024)
    noise_beta: float | None = Field(default=None, ge=0, le=4, allow_inf_nan=False)
    keep_elites: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    budget: Budget = Field(default_factory=Budget)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    guardrails: Guardrails | None = None
    warm_start: WarmStart | None = None
    door_y: float | None = Field(default=None, allow_inf_nan=False)
    door_waypoint: bool = True

    def body(self) -> dict[str, object]:
        """The JSON body of these options (unset optional fields left out)."""
        return self.model_dump(mode="json", exclude_none=True)


class Timing(_Response):
    """Where the time of one request went (milliseconds)."""

    queue_ms: float
    encode_ms: float
    plan_ms: float
    total_ms: float


class PlanResponse(_Response):
    """A plan that passed the server's final guardrail check."""

    plan_id: str
    model: str
    env_id: str
    planner: str
    actions: list[list[float]]
    frameskip: int
    cost: float
    objective: float
    iterations: int
    stopped_because: str
    warm_started: bool
    guardrails_active: list[str]
    waypoint: list[float] | None = None
    timing: Timing
    warm_start_token: str
    preview_url: str


class PlanRecord(PlanResponse):
    """A stored plan with its optimisation trace and probed states."""

    trace: list[float]
    trace_ms: list[float]
    predicted_states: dict[str, list[float]]


class ModelInfo(_Response):
    """One model bundle the server has loaded."""

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


class EncoderInfo(_Response):
    """The frozen encoder behind the loaded models."""

    encoder_id: str
    weights_sha256: str
    provenance: str


class Health(_Response):
    """Liveness and what is loaded."""

    status: str
    version: str
    device: str
    encoders: list[EncoderInfo]
    models: list[str]
