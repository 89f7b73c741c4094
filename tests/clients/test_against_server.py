"""The client and the runner against the real app, in-process, on the tiny test model."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parents[1] / "world_model"))
from tiny_model import IMAGE_SIZE, PROPRIO_DIM, STATE_LABELS, tiny_model

import clients.cli
from clients import (
    AsyncWorldplanClient,
    AuthenticationError,
    BadRequestError,
    Budget,
    InProcessTransport,
    MPCSession,
    NotFoundError,
    PlanOptions,
    ServerError,
    WorldplanClient,
    WorldplanTimeoutError,
)
from clients.evaluate import EvalConfig, evaluate
from clients.inprocess import LifespanError
from server.app import create_app
from server.registry import LoadedModel, ModelRegistry
from server.settings import Settings
from world_model.model import NormStats

KEY = "client-test-key"
MODEL = "tiny-pusht"


def registry() -> ModelRegistry:
    model = tiny_model(seed=0)
    a, s = model.action_dim, len(STATE_LABELS)
    model.set_stats(
        NormStats(
            action_mean=torch.zeros(a),
            action_std=torch.full((a,), 0.3),
            proprio_mean=torch.full((PROPRIO_DIM,), 256.0),
            proprio_std=torch.full((PROPRIO_DIM,), 50.0),
            state_mean=torch.full((s,), 256.0),
            state_std=torch.full((s,), 1.0),
        )
    )
    return ModelRegistry({MODEL: LoadedModel(MODEL, Path(), model, {"val_loss": 0.1})})


@pytest.fixture(scope="module")
def transport() -> Iterator[InProcessTransport]:
    app = create_app(Settings(api_keys=[KEY]), registry=registry())  # type: ignore[list-item]
    with InProcessTransport(app) as t:
        yield t


def image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)


OPTIONS = PlanOptions(model=MODEL, horizon=1, budget=Budget(iterations=1), proprio=[250.0, 260.0])


def test_every_endpoint_through_the_in_process_transport(transport: InProcessTransport) -> None:
    client = WorldplanClient(api_key=KEY, transport=transport)
    assert client.health().models == [MODEL]
    info = client.models()[0]
    assert (info.image_size, info.proprio_dim) == (IMAGE_SIZE, PROPRIO_DIM)
    plan = client.plan(image(1), image(2), OPTIONS)
    assert np.asarray(plan.actions).shape == (info.frameskip, info.env_action_dim)
    multipart = client.plan(image(1), image(2), OPTIONS, upload="multipart", image_format="npy")
    assert multipart.model == MODEL
    record = client.get_plan(plan.plan_id)
    assert record.plan_id == plan.plan_id
    assert len(record.trace) >= 1
    assert client.preview(plan.plan_id, "png").startswith(b"\x89PNG")
    assert "worldplan_requests_total" in client.metrics()


def test_server_errors_arrive_with_their_messages(transport: InProcessTransport) -> None:
    client = WorldplanClient(api_key=KEY, transport=transport)
    with pytest.raises(BadRequestError, match="observation is 32x10 px") as info:
        client.plan(image(1)[:10], image(2), OPTIONS)
    assert info.value.status_code == 422
    with pytest.raises(NotFoundError, match="no plan 'nope'"):
        client.get_plan("nope")
    with pytest.raises(AuthenticationError, match="invalid API key"):
        WorldplanClient(api_key="wrong", transport=transport).models()


def test_session_warm_starts_on_the_server(transport: InProcessTransport) -> None:
    session = MPCSession(WorldplanClient(api_key=KEY, transport=transport), OPTIONS)
    assert not session.plan(image(1), image(2)).warm_started
    session.executed(2)
    assert session.plan(image(1), image(2)).warm_started


def test_async_client_through_the_same_transport(transport: InProcessTransport) -> None:
    async def main() -> Any:
        client = AsyncWorldplanClient(api_key=KEY, transport=transport)
        return await asyncio.gather(client.health(), client.models())

    health, models = asyncio.run(main())
    assert health.status == "ok"
    assert models[0].name == MODEL


def test_closed_loop_episode_against_the_real_service(transport: InProcessTransport) -> None:
    client = WorldplanClient(api_key=KEY, transport=transport)
    config = EvalConfig(
        env="pusht", episodes=1, seed=0, max_steps=4, budgets=(1,), horizon=2, baselines=False
    )
    with pytest.raises(ValueError, match="takes proprio of 2 values but worldplan/PushT-v0"):
        evaluate(client, config)  # the tiny model's proprio does not match push-T's
    config = dataclasses.replace(config, send_proprio=False)
    result = evaluate(client, config)
    (ep,) = result.episodes
    assert ep.steps == 4
    assert len(ep.plan_ids) == 1
    assert all(ms is not None and ms > 0 for ms in ep.plan_ms)
    assert client.get_plan(ep.plan_ids[0] or "").model == MODEL


def test_lifespan_runs_around_the_transport() -> None:
    events: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                events.append(message["type"])
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b'{"status": "ok", "version": "0", "device": "cpu", "encoders": [], "models": []}'
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    with WorldplanClient(transport=InProcessTransport(app)) as client:
        assert events == ["lifespan.startup"]
        assert client.health().status == "ok"
    assert events == ["lifespan.startup", "lifespan.shutdown"]


def test_app_failures_are_server_errors_and_slow_answers_time_out() -> None:
    never = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["path"] == "/v1/health":
            raise RuntimeError("boom")
        await never.wait()

    with WorldplanClient(transport=InProcessTransport(app), timeout_s=0.2) as client:
        with pytest.raises(ServerError) as info:
            client.health()
        assert info.value.status_code == 500
        with pytest.raises(WorldplanTimeoutError, match="timed out"):
            client.models()


def test_eval_command_in_process_through_the_app_factory(tmp_path: Path) -> None:
    keys: list[str] = []

    def factory(api_key: str) -> Any:
        keys.append(api_key)
        return create_app(Settings(api_keys=[api_key]), registry=registry())  # type: ignore[list-item]

    app = typer.Typer()
    app.add_typer(typer.Typer(), name="bench")
    clients.cli.register(app, typer.Typer())
    clients.cli.set_app_factory(factory)
    try:
        out = tmp_path / "r.json"
        args = ["eval", "--env", "pusht", "--episodes", "1", "--max-steps", "6", "--budgets", "1"]
        args += ["--horizon", "1", "--no-baselines", "--no-proprio", "--out", str(out)]
        args += ["--noise-beta", "2", "--keep-elites", "0.3", "--replan-horizon", "2"]
        result = CliRunner().invoke(app, args)
        wrong = CliRunner().invoke(app, [*args, "--planner", "gradient"])
    finally:
        clients.cli.set_app_factory(None)
    assert result.exit_code == 0, result.output
    assert len(keys) == 1  # a fresh key, accepted by the in-process app
    data = json.loads(out.read_text())
    assert data["model"]["name"] == MODEL
    episode = data["episodes"][0]
    assert episode["steps"] == 6
    assert len(episode["plan_ids"]) >= 2  # replans, warm-started across the horizons
    assert (data["noise_beta"], data["keep_elites"]) == (2.0, 0.3)
    assert (data["horizon"], data["replan_horizon"]) == (1, 2)
    assert wrong.exit_code != 0
    assert "'cem' only" in wrong.output


def test_failed_startup_is_reported() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no models in models/"})

    with pytest.raises(LifespanError, match="no models in models/"):
        InProcessTransport(app)
