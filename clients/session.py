"""MPC sessions: plan, execute some steps, plan again warm-started from the last plan.

A session remembers the last plan's warm-start token and how many env steps
were executed since, and turns them into the ``warm_start`` of the next
request (planning steps = env steps / frameskip). A token the server no longer
knows (evicted) is dropped and the plan is asked again cold.

``replan_horizon`` lets a plan look further ahead when the previous plan was
executed to its end: the goal was then not reached within one horizon, and what
is left (a push from another side of the T) is often a longer manoeuvre than the
previous plan could see. Plans made part-way through the previous one (receding
horizon, ``executed`` fewer steps than it had) keep the options' horizon.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from clients.client import AsyncWorldplanClient, Upload, WorldplanClient
from clients.errors import NotFoundError
from clients.images import ImageFormat, ImageInput
from clients.types import PlanOptions, PlanResponse, WarmStart

log = logging.getLogger(__name__)

_MAX_WARM_STEPS = 64  # the API's bound on warm_start.executed_steps


class _SessionState:
    """What both sessions remember between plans."""

    def __init__(
        self,
        options: PlanOptions,
        warm_start: bool,
        upload: Upload,
        image_format: ImageFormat,
        replan_horizon: int | None,
    ) -> None:
        if replan_horizon is not None and replan_horizon < 1:
            raise ValueError(f"replan_horizon must be >= 1 or None, got {replan_horizon}")
        self.options = options
        self.warm_start = warm_start
        self.replan_horizon = replan_horizon
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

    def ran_out(self) -> bool:
        """Whether the last plan (if any) was executed to its end."""
        return self.last is not None and self._executed_env_steps >= len(self.last.actions)

    def _request_options(
        self, proprio: Sequence[float] | None, goal_proprio: Sequence[float] | None
    ) -> PlanOptions:
        warm = None
        if self.warm_start and self.last is not None:
            steps = self._executed_env_steps // max(self.last.frameskip, 1)
            warm = WarmStart(
                token=self.last.warm_start_token, executed_steps=min(steps, _MAX_WARM_STEPS)
            )
        update: dict[str, object] = {
            "proprio": None if proprio is None else [float(v) for v in proprio],
            "goal_proprio": None if goal_proprio is None else [float(v) for v in goal_proprio],
            "warm_start": warm,
        }
        if self.replan_horizon is not None and self.ran_out():
            update["horizon"] = self.replan_horizon
        return self.options.model_copy(update=update)

    def _remember(self, response: PlanResponse) -> PlanResponse:
        self.last = response
        self._executed_env_steps = 0
        return response


class MPCSession(_SessionState):
    """Receding-horizon planning through a :class:`WorldplanClient`.

    Args:
        client: The client to plan through.
        options: Options of every request (model, planner, budget, ...); proprio and
            warm start are filled per call.
        warm_start: Whether to seed each plan with the previous one.
        upload: How images are sent (see :meth:`WorldplanClient.plan`).
        image_format: How arrays are encoded.
        replan_horizon: Horizon of a plan made after the previous one was executed
            to its end (warm-started from it, padded); None keeps ``options.horizon``.
    """

    def __init__(
        self,
        client: WorldplanClient,
        options: PlanOptions,
        *,
        warm_start: bool = True,
        upload: Upload = "json",
        image_format: ImageFormat = "png",
        replan_horizon: int | None = None,
    ) -> None:
        super().__init__(options, warm_start, upload, image_format, replan_horizon)
        self.client = client

    def plan(
        self,
        observation: ImageInput,
        goal: ImageInput,
        proprio: Sequence[float] | None = None,
        goal_proprio: Sequence[float] | None = None,
    ) -> PlanResponse:
        """Plan from ``observation`` to ``goal`` (arrays or encoded bytes), warm when possible."""
        options = self._request_options(proprio, goal_proprio)
        try:
            response = self._send(observation, goal, options)
        except NotFoundError:
            if options.warm_start is None:
                raise
            log.info("warm-start token expired on the server; planning cold")
            cold = options.model_copy(update={"warm_start": None})
            response = self._send(observation, goal, cold)
        return self._remember(response)

    def _send(
        self, observation: ImageInput, goal: ImageInput, options: PlanOptions
    ) -> PlanResponse:
        return self.client.plan(
            observation, goal, options, upload=self.upload, image_format=self.image_format
        )


class AsyncMPCSession(_SessionState):
    """:class:`MPCSession` for an :class:`AsyncWorldplanClient`."""

    def __init__(
        self,
        client: AsyncWorldplanClient,
        options: PlanOptions,
        *,
        warm_start: bool = True,
        upload: Upload = "json",
        image_format: ImageFormat = "png",
        replan_horizon: int | None = None,
    ) -> None:
        super().__init__(options, warm_start, upload, image_format, replan_horizon)
        self.client = client

    async def plan(
        self,
        observation: ImageInput,
        goal: ImageInput,
        proprio: Sequence[float] | None = None,
        goal_proprio: Sequence[float] | None = None,
    ) -> PlanResponse:
        """Plan from ``observation`` to ``goal``, warm-started when possible."""
        options = self._request_options(proprio, goal_proprio)
        try:
            return self._remember(await self._send(observation, goal, options))
        except NotFoundError:
            if options.warm_start is None:
                raise
            log.info("warm-start token expired on the server; planning cold")
            cold = options.model_copy(update={"warm_start": None})
            return self._remember(await self._send(observation, goal, cold))

    async def _send(
        self, observation: ImageInput, goal: ImageInput, options: PlanOptions
    ) -> PlanResponse:
        return await self.client.plan(
            observation, goal, options, upload=self.upload, image_format=self.image_format
        )
