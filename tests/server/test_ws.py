"""The msgpack websocket endpoint ``/v1/ws``, through starlette's TestClient."""

from __future__ import annotations

import base64
import io
import re
from typing import Any

import msgpack
import numpy as np
import pytest
from fastapi.testclient import TestClient
from server_fixtures import KEY, MODEL, make_registry, plan_body
from starlette.websockets import WebSocketDisconnect

from server.app import create_app
from server.settings import Settings
from server.ws import decode_array, encode_array


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)


def _npy_b64(arr: np.ndarray) -> str:
    buf = io.BytesIO()
    np.save(buf, arr)
    return base64.b64encode(buf.getvalue()).decode()


def _message(**overrides: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "model": MODEL,
        "observation": encode_array(_image(1)),
        "goal": encode_array(_image(2)),
        "planner": "gradient",
        "horizon": 2,
        "budget": {"iterations": 2},
        "seed": 4,
    }
    msg.update(overrides)
    return msg


def _ask(ws: Any, msg: dict[str, Any]) -> dict[str, Any]:
    ws.send_bytes(msgpack.packb(msg, use_bin_type=True))
    reply: dict[str, Any] = msgpack.unpackb(ws.receive_bytes(), raw=False)
    return reply


def test_ws_plan_equals_the_http_plan_for_the_same_request(client: TestClient) -> None:
    with client.websocket_connect("/v1/ws", headers={"X-API-Key": KEY}) as ws:
        reply = _ask(ws, _message(id="step-1"))
    assert "error" not in reply, reply
    assert reply["id"] == "step-1"
    actions = decode_array(reply["actions"], "actions")
    assert actions.dtype == np.float32
    assert actions.shape == (2 * 2, 2)  # horizon x frameskip rows of env actions
    body = plan_body(
        observation=_npy_b64(_image(1)),
        goal=_npy_b64(_image(2)),
        seed=4,
        planner="gradient",
        horizon=2,
        budget={"iterations": 2},
    )
    http = client.post("/v1/plan", json=body)
    assert http.status_code == 200, http.text
    np.testing.assert_allclose(actions, np.asarray(http.json()["actions"]), rtol=0, atol=1e-6)
    assert client.get(f"/v1/plans/{reply['plan_id']}").status_code == 200
    assert reply["warm_start_token"] == reply["plan_id"]


def test_ws_accepts_png_bytes_proprio_arrays_and_warm_starts(client: TestClient) -> None:
    png = base64.b64decode(plan_body()["observation"])  # type: ignore[arg-type]
    proprio = encode_array(np.asarray([250.0, 260.0], np.float32))
    with client.websocket_connect("/v1/ws", headers={"X-API-Key": KEY}) as ws:
        first = _ask(ws, _message(observation=png, proprio=proprio, id=1))
        assert first.get("id") == 1
        assert "error" not in first, first
        warm = {"token": first["warm_start_token"], "executed_steps": 1}
        second = _ask(ws, _message(observation=png, warm_start=warm))
    assert "error" not in second, second
    assert second["warm_started"] is True


BAD_MESSAGES: list[tuple[bytes, int, str]] = [
    (b"\xc1not msgpack", 422, "msgpack"),
    (msgpack.packb([1, 2, 3]), 422, "map"),
    (msgpack.packb({"model": MODEL, "goal": b"x"}), 422, "observation"),
    (msgpack.packb(msgpack.ExtType(1, b"\x80\x04K\x01.")), 422, "map"),
    (
        msgpack.packb(_message(observation={"dtype": "object", "shape": [1], "bytes": b"\0" * 8})),
        422,
        "dtype",
    ),
    (
        msgpack.packb(
            _message(observation={"dtype": "uint8", "shape": [32, 32, 3], "bytes": b"\0"})
        ),
        422,
        "needs 3072 bytes",
    ),
    (
        msgpack.packb(_message(observation=encode_array(np.zeros((32, 32), np.uint8)))),
        422,
        "HxWx3 uint8",
    ),
    (
        msgpack.packb(_message(observation=encode_array(_image(1).astype(np.float32)))),
        422,
        "HxWx3 uint8",
    ),
    (msgpack.packb(_message(model="nope")), 404, "unknown model"),
    (msgpack.packb(_message(horizon=0)), 422, "horizon"),
    (msgpack.packb(_message(extra=1)), 422, "extra"),
    (
        msgpack.packb(_message(proprio=encode_array(np.asarray([1.0, np.nan])))),
        422,
        "finite",
    ),
    (msgpack.packb(_message(guardrails={"max_step": 5.0})), 422, "loosen"),
    (msgpack.packb(_message(budget={"iterations": 100_000})), 422, "iterations"),
]


def test_bad_messages_get_an_error_and_the_connection_stays_open(client: TestClient) -> None:
    with client.websocket_connect("/v1/ws", headers={"X-API-Key": KEY}) as ws:
        for i, (raw, status, needle) in enumerate(BAD_MESSAGES):
            ws.send_bytes(raw)
            reply = msgpack.unpackb(ws.receive_bytes(), raw=False)
            assert reply["status"] == status, (i, reply)
            assert needle in reply["error"], (i, reply)
        good = _ask(ws, _message())  # the same connection still plans
        assert "error" not in good, good
    n422 = sum(1 for _, status, _ in BAD_MESSAGES if status == 422)
    metrics = client.get("/metrics").text
    assert f'worldplan_requests_total{{route="/v1/ws",status="422"}} {n422}.0' in metrics


def test_pickled_npy_and_text_frames_are_refused(client: TestClient) -> None:
    buf = io.BytesIO()
    np.save(buf, np.array([object()], dtype=object), allow_pickle=True)
    with client.websocket_connect("/v1/ws", headers={"X-API-Key": KEY}) as ws:
        reply = _ask(ws, _message(goal=buf.getvalue(), id="p"))
        assert reply["status"] == 422
        assert "pickle" in reply["error"]
        assert reply["id"] == "p"
        ws.send_text("{}")
        text_reply = msgpack.unpackb(ws.receive_bytes(), raw=False)
        assert "binary" in text_reply["error"]


def test_oversized_message_is_refused_without_closing(client: TestClient) -> None:
    big = _message(observation=b"\x89PNG" + b"\0" * 1_100_000)  # settings allow 1 MB
    with client.websocket_connect("/v1/ws", headers={"X-API-Key": KEY}) as ws:
        reply = _ask(ws, big)
        assert reply["status"] == 413
        assert "error" not in _ask(ws, _message())


@pytest.mark.parametrize(
    ("path", "headers"),
    [("/v1/ws", {}), ("/v1/ws", {"X-API-Key": "wrong"}), ("/v1/ws?api_key=wrong", {})],
)
def test_connect_without_a_valid_key_is_closed_with_1008(
    client: TestClient, path: str, headers: dict[str, str]
) -> None:
    with (
        pytest.raises(WebSocketDisconnect) as info,
        client.websocket_connect(path, headers={"X-API-Key": "", **headers}),
    ):
        pass
    assert info.value.code == 1008


def test_key_in_the_query_is_accepted(client: TestClient) -> None:
    with client.websocket_connect(f"/v1/ws?api_key={KEY}", headers={"X-API-Key": ""}) as ws:
        assert "error" not in _ask(ws, _message())


def test_two_connections_share_one_planner_batch() -> None:
    settings = Settings(api_keys=[KEY], batch_window_ms=1000.0)  # type: ignore[list-item]
    app = create_app(settings, registry=make_registry())
    with (
        TestClient(app, headers={"X-API-Key": KEY}) as c,
        c.websocket_connect("/v1/ws") as a,
        c.websocket_connect("/v1/ws") as b,
    ):
        a.send_bytes(msgpack.packb(_message(seed=1, id="a")))
        b.send_bytes(msgpack.packb(_message(seed=2, id="b")))
        ra = msgpack.unpackb(a.receive_bytes(), raw=False)
        rb = msgpack.unpackb(b.receive_bytes(), raw=False)
        metrics = c.get("/metrics").text
    assert (ra["id"], rb["id"]) == ("a", "b")
    assert "worldplan_batch_size_count 1.0" in metrics
    assert "worldplan_batch_size_sum 2.0" in metrics
    assert re.search(r'worldplan_requests_total\{route="/v1/ws",status="200"\} 2\.0', metrics)
