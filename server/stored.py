"""What the server keeps of a plan for ``GET /v1/plans/{id}``, previews and warm starts."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from torch import Tensor

from planner import Guardrails
from server.schemas import PlanRecord
from world_model.types import Latent


@dataclass
class StoredPlan:
    """One answered plan request."""

    record: PlanRecord
    model: str
    actions: Tensor  # (H, A) planning actions, env units
    states: NDArray[np.float64]  # (H, S) probed states
    z_obs: Latent  # (1, 1, ...)
    observation: NDArray[np.uint8]
    goal: NDArray[np.uint8]
    guardrails: Guardrails
    previews: dict[str, bytes] = field(default_factory=dict)
