"""The HTTP client against a fake server: encoding, headers, retries, errors, sessions."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import httpx
import numpy as np
import pytest
from clients_fakes import KEY, FakeService, maze_model, plan_body

from clients import (
    AsyncMPCSession,
    AsyncWorldplanClient,
    AuthenticationError,
    BadRequestError,
    MPCSession,
    NotFoundError,
    PlanOptions,
    ResponseFormatError,
    RetryPolicy,
    ServerError,
    WorldplanClient,
    WorldplanConnectionError,
    WorldplanError,
    WorldplanTimeoutError,
)
from clients.images import encode_png
from clients.types import Budget, WarmStart

SIZE = 32
MODEL = "maze-tworoom"


def image(seed: int, size: int = SIZE) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def options(**kw: Any) -> PlanOptions:
    base: dict[str, Any] = {
        "model": MODEL,
        "proprio": [20.0, 30.0, 0.0, 0.0],
        "goal_proprio": [44.0, 30.0, 0.0, 0.0],
        "door_y": 32.0,
        "horizon": 2,
    }
    base.update(kw)
    return PlanOptions(**base)


@pytest.fixture
def fake() -> FakeService:
    return FakeService([maze_model("tworoom", SIZE)])


@pytest.fixture
def client(fake: FakeService) -> WorldplanClient:
    return WorldplanClient(api_key=KEY, transport=fake.transport())


def test_json_plan_round_trips_png_images_and_options(
    fake: FakeService, client: WorldplanClient
) -> None:
    obs, goal = image(1), image(2)
    plan = client.plan(obs, goal, options(budget=Budget(iterations=7), seed=3))
    seen = fake.seen[-1]
    assert seen.kind == "json"
    assert seen.headers["x-api-key"] == KEY
    assert seen.headers["content-type"] == "application/json"
    np.testing.assert_array_equal(seen.observation, obs)
    np.testing.assert_array_equal(seen.goal, goal)
    assert seen.options["budget"] == {"iterations": 7}
    assert seen.options["seed"] == 3
    assert "warm_start" not in seen.options  # unset optional fields are left out
    assert len(plan.actions) == 2 * 5
    assert plan.frameskip == 5
    assert plan.timing.plan_ms == pytest.approx(7.0)


@pytest.mark.parametrize("fmt", ["npy", "png"])
def test_multipart_plan_sends_files_and_options_field(
    fake: FakeService, client: WorldplanClient, fmt: str
) -> None:
    obs, goal = image(3), image(4)
    client.plan(obs, goal, options(), upload="multipart", image_format=fmt)  # type: ignore[arg-type]
    seen = fake.seen[-1]
    assert seen.kind == "multipart"
    np.testing.assert_array_equal(seen.observation, obs)
    np.testing.assert_array_equal(seen.goal, goal)
    assert seen.options["model"] == MODEL
    assert seen.options["door_y"] == 32.0


def test_already_encoded_bytes_are_sent_unchanged(
    fake: FakeService, client: WorldplanClient
) -> None:
    png = encode_png(image(5))
    client.plan(png, png, options())
    np.testing.assert_array_equal(fake.seen[-1].observation, image(5))


def test_bad_images_are_refused_before_sending(fake: FakeService, client: WorldplanClient) -> None:
    with pytest.raises(ValueError, match=r"HxWx3 uint8.*\(32, 32\) float64"):
        client.plan(np.zeros((32, 32)), image(1), options())
    with pytest.raises(ValueError, match="observation must be an HxWx3 uint8"):
        client.plan(image(1).astype(np.float32), image(1), options())
    assert fake.seen == []


def test_meta_endpoints_are_typed(fake: FakeService, client: WorldplanClient) -> None:
    health = client.health()
    assert health.status == "ok"
    assert health.models == [MODEL]
    models = client.models()
    assert models[0].name == MODEL
    assert models[0].env_kwargs == {"layout": "tworoom"}
    assert "worldplan_requests_total" in client.metrics()


def test_plan_record_and_preview_paths() -> None:
    record = plan_body("abc", maze_model(), np.zeros((3, 2), np.float32), False)
    record.update(trace=[3.0, 2.0], trace_ms=[1.0, 2.0], predicted_states={"agent_x": [1.0]})
    paths: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append((request.url.path, request.url.query.decode()))
        if request.url.path.endswith("/preview"):
            return httpx.Response(200, content=b"\x89PNG...", headers={"content-type": "image/png"})
        return httpx.Response(200, json=record)

    with WorldplanClient(api_key=KEY, transport=httpx.MockTransport(handler)) as c:
        got = c.get_plan("abc")
        png = c.preview("abc", "png")
    assert got.trace == [3.0, 2.0]
    assert got.predicted_states == {"agent_x": [1.0]}
    assert png.startswith(b"\x89PNG")
    assert paths == [("/v1/plans/abc", ""), ("/v1/plans/abc/preview", "format=png")]


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (401, AuthenticationError),
        (404, NotFoundError),
        (422, BadRequestError),
        (413, WorldplanError),
        (500, ServerError),
    ],
)
def test_errors_carry_status_and_detail_and_are_not_retried(
    status: int, cls: type[WorldplanError]
) -> None:
    calls: list[int] = []
    detail = f"budget.iterations: must be <= 500 (status {status})"

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(status, json={"detail": detail})

    sleeps: list[float] = []
    with (
        WorldplanClient(
            api_key=KEY, transport=httpx.MockTransport(handler), sleep=sleeps.append
        ) as c,
        pytest.raises(cls) as info,
    ):
        c.plan(image(1), image(2), options())
    assert info.value.status_code == status
    assert info.value.detail == detail
    assert detail in str(info.value)
    assert len(calls) == 1
    assert sleeps == []


def test_missing_key_is_an_authentication_error(fake: FakeService) -> None:
    with WorldplanClient(api_key="wrong", transport=fake.transport()) as c:
        with pytest.raises(AuthenticationError, match="invalid API key"):
            c.models()
        assert c.health().status == "ok"  # health needs no key


def test_connection_errors_are_retried_with_backoff(fake: FakeService) -> None:
    failures = [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow")]

    def handler(request: httpx.Request) -> httpx.Response:
        if failures:
            raise failures.pop(0)
        return fake(request)

    sleeps: list[float] = []
    retry = RetryPolicy(attempts=4, backoff_s=0.1, max_backoff_s=1.0)
    with WorldplanClient(
        api_key=KEY, transport=httpx.MockTransport(handler), retry=retry, sleep=sleeps.append
    ) as c:
        plan = c.plan(image(1), image(2), options())
    assert len(plan.actions) == 10
    assert sleeps == pytest.approx([0.1, 0.2])


def test_connection_errors_give_up_after_the_attempts() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        raise httpx.ConnectError("refused")

    sleeps: list[float] = []
    retry = RetryPolicy(attempts=3, backoff_s=1.0, max_backoff_s=1.5)
    with (
        WorldplanClient(
            api_key=KEY, transport=httpx.MockTransport(handler), retry=retry, sleep=sleeps.append
        ) as c,
        pytest.raises(WorldplanConnectionError, match="after 3 attempt") as info,
    ):
        c.health()
    assert info.value.status_code is None
    assert len(calls) == 3
    assert sleeps == pytest.approx([1.0, 1.5])


def test_read_timeouts_are_not_retried() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        raise httpx.ReadTimeout("planning took too long")

    with (
        WorldplanClient(
            api_key=KEY, transport=httpx.MockTransport(handler), sleep=lambda _: None
        ) as c,
        pytest.raises(WorldplanTimeoutError),
    ):
        c.plan(image(1), image(2), options())
    assert len(calls) == 1


def test_a_body_that_breaks_the_contract_is_reported() -> None:
    handler = lambda request: httpx.Response(200, json={"status": "ok"})  # noqa: E731
    with WorldplanClient(api_key=KEY, transport=httpx.MockTransport(handler)) as c:
        with pytest.raises(ResponseFormatError, match="not a Health"):
            c.health()
        with pytest.raises(ResponseFormatError, match="ModelInfo"):
            c.models()


def test_options_are_validated_before_sending() -> None:
    with pytest.raises(ValueError, match="planner"):
        PlanOptions(model="m", planner="adam")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="horizon"):
        PlanOptions(model="m", horizon=0)
    with pytest.raises(ValueError, match="budgte"):
        PlanOptions(model="m", budgte={"iterations": 3})  # type: ignore[call-arg]


def test_client_needs_a_url_or_a_transport() -> None:
    with pytest.raises(ValueError, match="base_url"):
        WorldplanClient()


def test_async_client_plans_retries_and_raises(fake: FakeService) -> None:
    failures = [httpx.ConnectError("refused")]

    async def handler(request: httpx.Request) -> httpx.Response:
        if failures:
            raise failures.pop(0)
        return fake(request)

    sleeps: list[float] = []

    async def record(s: float) -> None:
        sleeps.append(s)

    async def main() -> None:
        transport = httpx.MockTransport(handler)
        async with AsyncWorldplanClient(api_key=KEY, transport=transport, sleep=record) as c:
            plan = await c.plan(image(1), image(2), options(), upload="multipart")
            assert len(plan.actions) == 10
            assert (await c.health()).status == "ok"
            assert (await c.models())[0].name == MODEL
            with pytest.raises(NotFoundError, match="unknown model 'nope'"):
                await c.plan(image(1), image(2), options(model="nope"))

    asyncio.run(main())
    assert sleeps == pytest.approx([0.25])
    np.testing.assert_array_equal(fake.seen[0].observation, image(1))


def test_session_sends_the_warm_start_token_and_executed_steps(
    fake: FakeService, client: WorldplanClient
) -> None:
    session = MPCSession(client, options())
    first = session.plan(image(1), image(2), [20.0, 30.0, 0.0, 0.0], [44.0, 30.0, 0.0, 0.0])
    assert "warm_start" not in fake.seen[-1].options
    session.executed(10)  # two planning steps at frameskip 5
    second = session.plan(image(1), image(2), [24.0, 30.0, 0.0, 0.0], [44.0, 30.0, 0.0, 0.0])
    warm = fake.seen[-1].options["warm_start"]
    assert warm == {"token": first.warm_start_token, "executed_steps": 2}
    assert fake.seen[-1].options["proprio"] == [24.0, 30.0, 0.0, 0.0]
    assert second.warm_started
    session.reset()
    session.plan(image(1), image(2), [20.0, 30.0, 0.0, 0.0], [44.0, 30.0, 0.0, 0.0])
    assert "warm_start" not in fake.seen[-1].options


def test_session_replans_at_the_replan_horizon(fake: FakeService, client: WorldplanClient) -> None:
    session = MPCSession(client, options(horizon=3), replan_horizon=6)
    here, there = [20.0, 30.0, 0.0, 0.0], [44.0, 30.0, 0.0, 0.0]
    first = session.plan(image(1), image(2), here, there)
    assert fake.seen[-1].options["horizon"] == 3
    session.executed(15)
    second = session.plan(image(1), image(2), here, there)
    assert fake.seen[-1].options["horizon"] == 6
    assert fake.seen[-1].options["warm_start"]["token"] == first.warm_start_token
    assert len(second.actions) == 6 * 5  # horizon x frameskip
    session.executed(5)  # one planning step of six: receding horizon, not a miss
    session.plan(image(1), image(2), here, there)
    assert fake.seen[-1].options["horizon"] == 3
    session.reset()  # a new episode starts at the first plan's horizon again
    session.plan(image(1), image(2), here, there)
    assert fake.seen[-1].options["horizon"] == 3
    with pytest.raises(ValueError, match="replan_horizon"):
        MPCSession(client, options(), replan_horizon=0)


def test_session_plans_cold_when_the_token_expired(
    fake: FakeService, client: WorldplanClient
) -> None:
    session = MPCSession(client, options())
    session.plan(image(1), image(2), [20.0, 30.0, 0.0, 0.0], [44.0, 30.0, 0.0, 0.0])
    fake.tokens.clear()  # the server evicted every stored plan
    session.executed(5)
    plan = session.plan(image(1), image(2), [22.0, 30.0, 0.0, 0.0], [44.0, 30.0, 0.0, 0.0])
    assert not plan.warm_started
    assert [s.options.get("warm_start") is not None for s in fake.seen] == [False, True, False]


def test_warm_start_model_bounds() -> None:
    with pytest.raises(ValueError, match="executed_steps"):
        WarmStart(token="t", executed_steps=65)
    body = options(warm_start=WarmStart(token="t", executed_steps=3)).body()
    assert json.loads(json.dumps(body))["warm_start"] == {"token": "t", "executed_steps": 3}


def test_async_session_warm_starts(fake: FakeService) -> None:
    async def main() -> None:
        client = AsyncWorldplanClient(api_key=KEY, transport=fake.transport())
        session = AsyncMPCSession(client, options(), upload="multipart", image_format="npy")
        first = await session.plan(image(1), image(2), [20.0, 30.0, 0.0, 0.0], [44, 30, 0, 0])
        session.executed(5)
        await session.plan(image(1), image(2), [22.0, 30.0, 0.0, 0.0], [44, 30, 0, 0])
        assert fake.seen[-1].options["warm_start"] == {
            "token": first.warm_start_token,
            "executed_steps": 1,
        }
        fake.tokens.clear()
        session.executed(5)
        assert not (
            await session.plan(image(1), image(2), [22, 30, 0, 0], [44, 30, 0, 0])
        ).warm_started

    asyncio.run(main())
    assert [s.kind for s in fake.seen] == ["multipart"] * 4


def test_clients_never_import_the_server_planner_or_model() -> None:
    code = (
        "import sys, clients, clients.evaluate, clients.cli, clients.report; "
        "banned = ('server', 'planner', 'world_model', 'torch'); "
        "print(sorted(m for m in banned if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
