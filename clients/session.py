"""An MPC session: plan, execute some steps, plan again warm-started from the last plan.

The session remembers the last plan's warm-start token and how many env steps
were executed since, and turns them into the ``warm_start`` of the next
request (planning steps = env steps / frameskip). A token the server no longer
knows (evicted) is dropped and the plan is asked again cold.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from clients.client import Upload, WorldplanClient
from clients.errors import NotFoundError
from clients.images import ImageFormat, ImageInput
from clients.types import PlanOptions, PlanResponse, WarmStart

log = logging.getLogger(__name__)


class MPCSession:
    """Receding-horizon planning through a :class:`WorldplanClient`.

    Args:
        client: The client to plan through.
        options: Options of every request (model, planner, budget, ...); proprio and
            warm start are filled per call.
        warm_start: Whether to seed each plan with the previous one.
        upload: How images are sent (see :meth:`WorldplanClient.plan`).
        image_format: How arrays are encoded.
    """

    def __init__(
        self,
        client: WorldplanClient,
        options: PlanOptions,
        *,
        warm_start: bool = True,
        upload: Upload = "json",
        image_format: ImageFormat = "png",
    ) -> None:
        self.client = client
        self.options = options
        self.warm_start = warm_start
        self.upload: Upload = upload
        self.image_format: ImageFormat = image_format
        self.last: PlanResponse | None = None
        self._executed_env_steps = 0

    def reset(self) -> None:
        """Forget the previous plan (a new episode)."""
        self.last = None
        self._executed_env_steps = 0

    def executed(self, env_steps: int) -> None:
        """Record that ``env_steps`` env actions of the last plan were executed."""
        if env_steps < 0:
            raise ValueError(f"env_steps must be >= 0, got {env_steps}")
        self._executed_env_steps += env_steps

    def _warm(self) -> WarmStart | None:
        if not self.warm_start or self.last is None:
            return None
        steps = self._executed_env_steps // max(self.last.frameskip, 1)
        return WarmStart(token=self.last.warm_start_token, executed_steps=min(steps, 64))

    def plan(
        self,
        observation: ImageInput,
        goal: ImageInput,
        proprio: Sequence[float] | None = None,
        goal_proprio: Sequence[float] | None = None,
    ) -> PlanResponse:
        """Plan from ``observation`` to ``goal``, warm-started when possible."""
        update: dict[str, object] = {
            "proprio": None if proprio is None else [float(v) for v in proprio],
            "goal_proprio": None if goal_proprio is None else [float(v) for v in goal_proprio],
            "warm_start": self._warm(),
        }
        options = self.options.model_copy(update=update)
        try:
            response = self._send(observation, goal, options)
        except NotFoundError:
            if options.warm_start is None:
                raise
            log.info("warm-start token expired on the server; planning cold")
            response = self._send(
                observation, goal, options.model_copy(update={"warm_start": None})
            )
        self.last = response
        self._executed_env_steps = 0
        return response

    def _send(
        self, observation: ImageInput, goal: ImageInput, options: PlanOptions
    ) -> PlanResponse:
        return self.client.plan(
            observation, goal, options, upload=self.upload, image_format=self.image_format
        )
