"""Latent model-predictive control: objectives, guardrails, CEM / gradient / MPPI optimisers.

Use :func:`plan` for one request and :func:`plan_batch` for several independent
requests planned together (one model call per iteration); :func:`shift_plan` turns
the previous plan into the next warm start; :func:`guardrails_for` gives an
environment's hard guardrails, which a request may only tighten;
:class:`RecedingHorizon` runs the warm-started MPC loop.
"""

from planner.api import plan, plan_batch
from planner.check import Violation, check_plan
from planner.config import Budget, CEMConfig, GradientConfig, MPPIConfig, ObjectiveConfig
from planner.guardrails import (
    Box2D,
    Circle,
    GuardrailError,
    GuardrailRequest,
    Guardrails,
    guardrails_for,
)
from planner.mpc import RecedingHorizon
from planner.types import Plan, PlanRefused, PlanRequest, Refusal, shift_plan

__all__ = [
    "Box2D",
    "Budget",
    "CEMConfig",
    "Circle",
    "GradientConfig",
    "GuardrailError",
    "GuardrailRequest",
    "Guardrails",
    "MPPIConfig",
    "ObjectiveConfig",
    "Plan",
    "PlanRefused",
    "PlanRequest",
    "RecedingHorizon",
    "Refusal",
    "Violation",
    "check_plan",
    "guardrails_for",
    "plan",
    "plan_batch",
    "shift_plan",
]
