"""``/v1/ws``: plan requests over one websocket, msgpack-encoded, for closed-loop control.

Connect with an API key in the ``X-API-Key`` header or as ``?api_key=``; a missing or
wrong key closes the connection with code 1008 (policy violation) before it is accepted,
which uvicorn answers as an HTTP 403 to the handshake. uvicorn serves websockets with
the ``websockets`` package.

Each request is one binary message holding a msgpack map: the fields of
:class:`server.schemas.PlanOptions` (exactly as in ``POST /v1/plan``), ``observation``
and ``goal``, and an optional ``id`` (string or int) that the reply echoes. An image
is either an array map ``{"dtype": "uint8", "shape": [H, W, 3], "bytes": <C-order,
little-endian raw bytes>}`` or the bytes of a PNG, JPEG or ``.npy`` file; ``proprio``
and ``goal_proprio`` may be lists or array maps. Nothing is unpickled: array maps are
read with ``numpy.frombuffer`` from a list of plain numeric dtypes, msgpack extension
types are refused.

The reply is a msgpack map with the fields of :class:`server.schemas.PlanResponse`,
``actions`` being a float32 array map ``(horizon x frameskip, env_action_dim)``. A bad
message gets ``{"error": "...", "status": 4xx}`` (with its ``id``) and the connection
stays open. Requests go through the same batcher as ``POST /v1/plan``; one connection
is answered in order, many connections are batched together.
"""

from __future__ import annotations

import logging
from typing import Any

import msgpack
import numpy as np
from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect, status
from numpy.typing import NDArray
from pydantic import ValidationError

from planner import Refusal
from server.deps import Services, require_api_key_or_query
from server.images import ImageError, decode_image
from server.routers.plans import _build_job, _store
from server.schemas import PlanOptions, PlanResponse, validation_detail

log = logging.getLogger(__name__)

router = APIRouter()

#: dtypes an array map may name (no object, void or string dtypes).
ARRAY_DTYPES = frozenset(
    {"bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "int64", "uint64"}
    | {"float16", "float32", "float64"}
)
_MAX_NDIM = 4
_ROUTE = "/v1/ws"


class MessageError(ValueError):
    """A websocket message that cannot be used; ``status`` is the HTTP-like code to report."""

    def __init__(self, message: str, status_code: int = status.HTTP_422_UNPROCESSABLE_CONTENT):
        super().__init__(message)
        self.status_code = status_code


def encode_array(array: NDArray[Any]) -> dict[str, Any]:
    """An array as the map ``{"dtype", "shape", "bytes"}`` (C order, little-endian)."""
    if array.dtype.name not in ARRAY_DTYPES:
        raise ValueError(f"dtype {array.dtype} cannot be sent; use one of {sorted(ARRAY_DTYPES)}")
    arr = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return {"dtype": arr.dtype.name, "shape": list(arr.shape), "bytes": arr.tobytes()}


def decode_array(obj: object, name: str) -> NDArray[Any]:
    """The array an array map describes.

    Raises:
        MessageError: not a map with a known dtype, a valid shape and matching byte count.
    """
    if not isinstance(obj, dict) or set(obj) != {"dtype", "shape", "bytes"}:
        raise MessageError(f"{name} must be a map with keys dtype, shape and bytes")
    dtype, shape, data = obj["dtype"], obj["shape"], obj["bytes"]
    if not isinstance(dtype, str) or dtype not in ARRAY_DTYPES:
        raise MessageError(f"{name}.dtype must be one of {sorted(ARRAY_DTYPES)}, got {dtype!r}")
    if (
        not isinstance(shape, list)
        or len(shape) > _MAX_NDIM
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)
    ):
        raise MessageError(f"{name}.shape must be a list of at most {_MAX_NDIM} sizes >= 0")
    if not isinstance(data, bytes):
        raise MessageError(f"{name}.bytes must be msgpack bin (raw bytes)")
    dt = np.dtype(dtype).newbyteorder("<")
    want = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    if len(data) != want:
        raise MessageError(f"{name}: shape {shape} of {dtype} needs {want} bytes, got {len(data)}")
    return np.frombuffer(data, dtype=dt).reshape(shape)


def _image(obj: object, name: str, max_side: int) -> NDArray[np.uint8]:
    if isinstance(obj, bytes):
        try:
            return decode_image(obj, max_side)
        except ImageError as exc:
            raise MessageError(f"{name}: {exc}") from exc
    arr = decode_array(obj, name)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise MessageError(f"{name} must be HxWx3 uint8, got {tuple(arr.shape)} {arr.dtype}")
    if min(arr.shape[:2]) < 1 or max(arr.shape[:2]) > max_side:
        raise MessageError(f"{name} is {arr.shape[1]}x{arr.shape[0]}, must be 1..{max_side} a side")
    return np.ascontiguousarray(arr, dtype=np.uint8)


def _vector(obj: object, name: str) -> object:
    """Proprio as a list of floats when sent as an array map; anything else is left to pydantic."""
    if isinstance(obj, dict):
        return decode_array(obj, name).astype(np.float64).ravel().tolist()
    return obj


def unpack(data: bytes) -> dict[str, Any]:
    """The msgpack map of one message.

    Raises:
        MessageError: the bytes are not one msgpack map.
    """
    try:
        msg = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise MessageError(f"message is not valid msgpack: {exc}") from exc
    if not isinstance(msg, dict):
        raise MessageError("message must be a msgpack map of plan options and images")
    return msg


def parse_message(
    msg: dict[str, Any], max_side: int
) -> tuple[PlanOptions, NDArray[np.uint8], NDArray[np.uint8]]:
    """Options, observation and goal of one unpacked request.

    Raises:
        MessageError: a field is missing or invalid.
    """
    missing = [k for k in ("observation", "goal") if k not in msg]
    if missing:
        raise MessageError(f"message needs {' and '.join(missing)}")
    fields = {k: v for k, v in msg.items() if k not in ("observation", "goal", "id")}
    for key in ("proprio", "goal_proprio"):
        if key in fields:
            fields[key] = _vector(fields[key], key)
    try:
        options = PlanOptions.model_validate(fields)
    except ValidationError as exc:
        raise MessageError(validation_detail(exc.errors(include_url=False))) from exc
    return (
        options,
        _image(msg["observation"], "observation", max_side),
        _image(msg["goal"], "goal", max_side),
    )


def _request_id(msg: dict[str, Any]) -> object:
    """The ``id`` of a message when it is a string or an int (else None)."""
    rid = msg.get("id")
    return rid if isinstance(rid, str | int) and not isinstance(rid, bool) else None


async def _plan(services: Services, msg: dict[str, Any]) -> dict[str, Any]:
    """Plan for one unpacked message; the reply map (raises MessageError or HTTPException)."""
    options, obs, goal = parse_message(msg, services.settings.max_image_side)
    job = _build_job(services, options, obs, goal)
    outcome = await services.batcher.submit(job)
    if isinstance(outcome.result, Refusal):
        services.metrics.guardrail_refusals.labels("violating_plan").inc()
        raise MessageError(f"plan refused by the final guardrail check: {outcome.result.reason}")
    stored = _store(services, job, options, outcome, outcome.result)
    reply = PlanResponse.model_validate(
        stored.record.model_dump(exclude={"trace", "trace_ms", "predicted_states"})
    ).model_dump()
    reply["actions"] = encode_array(np.asarray(reply["actions"], dtype=np.float32))
    return reply


async def _answer(services: Services, data: bytes | None) -> dict[str, Any]:
    """The reply to one received websocket message: a plan or an error map."""
    rid: object = None
    try:
        if data is None:
            raise MessageError("send binary frames holding msgpack maps, not text", 400)
        limit = services.settings.max_request_bytes
        if len(data) > limit:
            raise MessageError(f"message larger than {limit} bytes", 413)
        msg = unpack(data)
        rid = _request_id(msg)
        reply = await _plan(services, msg)
        code = status.HTTP_200_OK
    except MessageError as exc:
        reply, code = {"error": str(exc)}, exc.status_code
    except HTTPException as exc:
        reply, code = {"error": str(exc.detail)}, exc.status_code
    except Exception:  # the connection outlives one failed plan, as HTTP requests do
        log.exception("websocket plan request failed")
        reply, code = {"error": "internal error while planning"}, 500
    if code != status.HTTP_200_OK:
        reply["status"] = code
    if rid is not None:
        reply["id"] = rid
    services.metrics.requests.labels(_ROUTE, str(code)).inc()
    return reply


@router.websocket(_ROUTE)
async def plan_socket(websocket: WebSocket) -> None:
    """Plan requests and replies as msgpack maps, one binary message each (see module doc)."""
    services: Services = websocket.app.state.services
    given = websocket.headers.get("x-api-key") or websocket.query_params.get("api_key")
    try:
        require_api_key_or_query(services, given, None)
    except HTTPException as exc:
        services.metrics.requests.labels(_ROUTE, str(exc.status_code)).inc()
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason=str(exc.detail))
        return
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            reply = await _answer(services, message.get("bytes"))
            await websocket.send_bytes(msgpack.packb(reply, use_bin_type=True))
    except WebSocketDisconnect:
        return
