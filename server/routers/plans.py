"""``POST /v1/plan``, ``GET /v1/plans/{id}`` and ``GET /v1/plans/{id}/preview``."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

import numpy as np
import torch
from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from planner import GuardrailError, Plan, Refusal, shift_plan
from server.deps import AuthDep, AuthOrQueryDep, Services, ServicesDep
from server.images import ImageError, decode_base64_image, decode_image, encode_png
from server.planning import (
    PlanJob,
    PlanOutcome,
    aimed_goal_proprio,
    budget_from,
    describe,
    optimiser_config,
    proprio_weight,
    tightened,
)
from server.previews import (
    PreviewData,
    animation_gif,
    contact_sheet,
    html_page,
    overlay_inputs,
)
from server.registry import LoadedModel, UnknownModelError
from server.schemas import (
    PlanOptions,
    PlanRecord,
    PlanRequestJSON,
    PlanResponse,
    Timing,
    validation_detail,
)
from server.stored import StoredPlan

router = APIRouter(prefix="/v1", tags=["plans"])

_PLAN_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/PlanRequestJSON"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["observation", "goal", "options"],
                    "properties": {
                        "observation": {"type": "string", "format": "binary"},
                        "goal": {"type": "string", "format": "binary"},
                        "options": {
                            "type": "string",
                            "description": "PlanOptions as a JSON string.",
                        },
                    },
                }
            },
        },
    }
}


def _unprocessable(message: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, message)


async def _read_request(
    request: Request, max_side: int
) -> tuple[PlanOptions, np.ndarray, np.ndarray]:
    """Options and the two decoded images, from JSON (base64) or multipart."""
    ctype = request.headers.get("content-type", "")
    try:
        if ctype.startswith("multipart/form-data"):
            form = await request.form()
            obs_f, goal_f, opts = form.get("observation"), form.get("goal"), form.get("options")
            if not isinstance(obs_f, UploadFile) or not isinstance(goal_f, UploadFile):
                raise _unprocessable("multipart needs files 'observation' and 'goal'")
            if not isinstance(opts, str):
                raise _unprocessable("multipart needs a field 'options' with PlanOptions JSON")
            options = PlanOptions.model_validate_json(opts)
            obs = decode_image(await obs_f.read(), max_side)
            goal = decode_image(await goal_f.read(), max_side)
            return options, obs, goal
        if not ctype.startswith("application/json"):
            raise HTTPException(
                status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                "send application/json (base64 images) or multipart/form-data (image files)",
            )
        body = PlanRequestJSON.model_validate_json(await request.body())
        obs = decode_base64_image(body.observation, max_side)
        goal = decode_base64_image(body.goal, max_side)
        options = PlanOptions.model_validate(body.model_dump(exclude={"observation", "goal"}))
        return options, obs, goal
    except ValidationError as exc:
        raise _unprocessable(validation_detail(exc.errors(include_url=False))) from exc
    except ImageError as exc:
        raise _unprocessable(str(exc)) from exc


def _check_inputs(loaded: LoadedModel, options: PlanOptions, *images: np.ndarray) -> None:
    size = loaded.model.spec.image_size
    for name, img in zip(("observation", "goal"), images, strict=True):
        if img.shape[:2] != (size, size):
            raise _unprocessable(
                f"{name} is {img.shape[1]}x{img.shape[0]} px; model {loaded.name!r} takes "
                f"{size}x{size} RGB images"
            )
    p = loaded.model.predictor.config.proprio_dim
    for name, value in (("proprio", options.proprio), ("goal_proprio", options.goal_proprio)):
        if value is not None and len(value) != p:
            raise _unprocessable(f"{name} must have {p} values for model {loaded.name!r}")


def _warm_init(services: Services, options: PlanOptions, horizon: int) -> torch.Tensor | None:
    if options.warm_start is None:
        return None
    prev = services.plans.get(options.warm_start.token)
    if prev is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "warm_start.token is unknown or has expired")
    if prev.model != options.model:
        raise _unprocessable(
            f"warm_start.token belongs to model {prev.model!r}; this request is {options.model!r}"
        )
    # A longer or shorter horizon than the previous plan's is fine: its unexecuted steps
    # are cut at the new horizon or padded with its last step.
    return shift_plan(prev.actions, options.warm_start.executed_steps, horizon=horizon)


def _build_job(
    services: Services, options: PlanOptions, obs: np.ndarray, goal: np.ndarray
) -> PlanJob:
    try:
        loaded = services.registry.get(options.model)
    except UnknownModelError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    _check_inputs(loaded, options, obs, goal)
    cfg = services.settings
    try:
        weight = proprio_weight(
            loaded.env_id, options.proprio_weight, options.goal_proprio is not None
        )
        config = optimiser_config(
            options.planner,
            options.horizon,
            options.samples,
            weight,
            noise_beta=options.noise_beta,
            keep_elites=options.keep_elites,
        )
        budget = budget_from(
            options.budget, options.planner, cfg.max_budget_iterations, cfg.max_budget_ms
        )
        rails = tightened(loaded.hard_guardrails(options.door_y), options.guardrails)
    except GuardrailError as exc:
        services.metrics.guardrail_refusals.labels("loosening").inc()
        raise _unprocessable(f"guardrail refused: {exc}") from exc
    except ValueError as exc:
        raise _unprocessable(str(exc)) from exc

    def vec(v: list[float] | None) -> np.ndarray | None:
        return None if v is None else np.asarray(v, dtype=np.float32)

    proprio, goal_proprio = vec(options.proprio), vec(options.goal_proprio)
    waypoint = None
    if options.door_waypoint:
        goal_proprio, waypoint = aimed_goal_proprio(loaded, proprio, goal_proprio, options.door_y)
    return PlanJob(
        loaded=loaded,
        config=config,
        observation=obs,
        goal=goal,
        proprio=proprio,
        goal_proprio=goal_proprio,
        guardrails=rails,
        budget=budget,
        seed=options.seed,
        init=_warm_init(services, options, config.horizon),
        submitted=time.perf_counter(),
        waypoint=waypoint,
    )


def _store(
    services: Services, job: PlanJob, options: PlanOptions, outcome: PlanOutcome, result: Plan
) -> StoredPlan:
    loaded = job.loaded
    plan_id = uuid.uuid4().hex
    total_ms = (time.perf_counter() - job.submitted) * 1000.0
    fs, env_a = loaded.model.frameskip, loaded.model.env_action_dim
    labels = loaded.model.state_labels
    states = result.states.detach().cpu().double().numpy()
    record = PlanRecord(
        plan_id=plan_id,
        model=loaded.name,
        env_id=loaded.env_id,
        planner=options.planner,
        actions=result.actions.detach().cpu().reshape(-1, env_a).tolist(),
        frameskip=fs,
        cost=result.cost,
        objective=result.objective,
        iterations=result.iterations,
        stopped_because=result.stopped_because,
        warm_started=result.warm_started,
        guardrails_active=describe(job.guardrails),
        waypoint=None if job.waypoint is None else list(job.waypoint),
        timing=Timing(
            queue_ms=outcome.queue_ms,
            encode_ms=outcome.encode_ms,
            plan_ms=outcome.plan_ms,
            total_ms=total_ms,
        ),
        warm_start_token=plan_id,
        preview_url=f"/v1/plans/{plan_id}/preview",
        trace=list(result.trace),
        trace_ms=list(result.trace_ms),
        predicted_states={name: states[:, i].tolist() for i, name in enumerate(labels)},
    )
    stored = StoredPlan(
        record=record,
        model=loaded.name,
        actions=result.actions.detach().cpu(),
        states=states,
        z_obs=outcome.z_obs,
        observation=job.observation,
        goal=job.goal,
        guardrails=job.guardrails,
    )
    services.plans.put(plan_id, stored)
    for stage, ms in (
        ("queue", outcome.queue_ms),
        ("encode", outcome.encode_ms),
        ("plan", outcome.plan_ms),
        ("total", total_ms),
    ):
        services.metrics.stage_seconds.labels(stage).observe(ms / 1000.0)
    return stored


@router.post(
    "/plan",
    response_model=PlanResponse,
    openapi_extra=_PLAN_BODY,
    dependencies=[AuthDep],
    responses={
        401: {"description": "Missing or invalid API key."},
        404: {"description": "Unknown model or warm-start token."},
        413: {"description": "Request too large."},
        415: {"description": "Unsupported content type."},
        422: {"description": "Invalid request, guardrail loosening, or a refused plan."},
    },
)
async def create_plan(request: Request, services: ServicesDep) -> PlanResponse:
    """Plan actions that take the observation to the goal, within the guardrails."""
    options, obs, goal = await _read_request(request, services.settings.max_image_side)
    job = _build_job(services, options, obs, goal)
    outcome = await services.batcher.submit(job)
    if isinstance(outcome.result, Refusal):
        services.metrics.guardrail_refusals.labels("violating_plan").inc()
        raise _unprocessable(f"plan refused by the final guardrail check: {outcome.result.reason}")
    stored = _store(services, job, options, outcome, outcome.result)
    return PlanResponse.model_validate(
        stored.record.model_dump(exclude={"trace", "trace_ms", "predicted_states"})
    )


def _stored(services: Services, plan_id: str) -> StoredPlan:
    stored = services.plans.get(plan_id)
    if stored is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no plan {plan_id!r} (unknown or evicted)")
    return stored


@router.get("/plans/{plan_id}", response_model=PlanRecord, dependencies=[AuthDep])
async def get_plan(plan_id: str, services: ServicesDep) -> PlanRecord:
    """A stored plan with its trace (cost per iteration) and predicted states."""
    return _stored(services, plan_id).record


def _preview_data(services: Services, stored: StoredPlan) -> PreviewData:
    loaded = services.registry.get(stored.model)
    model = loaded.model
    with torch.no_grad():
        z = model.rollout(stored.z_obs, stored.actions[None].to(model.device))  # (1, H, ...)
        frames = model.decode(z)[0].cpu().numpy()  # (H, s, s, 3)
    start = model.probe(stored.z_obs)[0].detach().cpu().double().numpy()  # (1, S)
    states = np.concatenate([start, stored.states], axis=0)  # (H + 1, S)
    points, strokes = overlay_inputs(
        stored.guardrails,
        model.state_labels,
        states,
        stored.actions.double().numpy(),
    )
    rails = stored.guardrails
    return PreviewData(
        plan_id=stored.record.plan_id,
        model=stored.model,
        observation=stored.observation,
        goal=stored.goal,
        imagined=frames,
        trace=tuple(stored.record.trace),
        points=points,
        strokes=strokes,
        workspace=rails.workspace.as_tuple(),
        transpose=model.spec.env_options.get("layout") == "umaze",
        cost=stored.record.cost,
    )


def _render_preview(services: Services, stored: StoredPlan, fmt: str) -> bytes:
    if fmt not in stored.previews:
        data = _preview_data(services, stored)
        if fmt == "png":
            stored.previews[fmt] = encode_png(contact_sheet(data))
        elif fmt == "gif":
            stored.previews[fmt] = animation_gif(data)
        else:
            stored.previews[fmt] = html_page(data).encode()
    return stored.previews[fmt]


_MEDIA = {"html": "text/html; charset=utf-8", "png": "image/png", "gif": "image/gif"}


@router.get(
    "/plans/{plan_id}/preview",
    dependencies=[AuthOrQueryDep],
    response_class=HTMLResponse,
    responses={200: {"content": {"image/png": {}, "image/gif": {}}}},
)
async def get_preview(
    plan_id: str,
    services: ServicesDep,
    format: Annotated[Literal["html", "png", "gif"], Query()] = "html",
) -> Response:
    """The plan for operators: observation, imagined frames, goal, cost curve, plan overlay."""
    stored = _stored(services, plan_id)
    body = await run_in_threadpool(_render_preview, services, stored, format)
    return Response(content=body, media_type=_MEDIA[format])
