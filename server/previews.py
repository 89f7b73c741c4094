"""Plan previews for operators: imagined frames, cost curve and the plan over the observation.

Everything here is drawn with OpenCV and encoded with Pillow: a PNG contact
sheet, an animated GIF (observation, imagined frames, goal) and a small HTML page
with the images embedded as data URIs (one request shows everything; no
front-end framework).
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from planner import Guardrails
from server.images import encode_png

_PANEL = 192
_WHITE = (255, 255, 255)
_PATH = (230, 60, 40)
_CURVE = (40, 90, 200)


@dataclass(frozen=True)
class PreviewData:
    """What a preview shows (images uint8 RGB)."""

    plan_id: str
    model: str
    observation: NDArray[np.uint8]  # (H, W, 3)
    goal: NDArray[np.uint8]  # (H, W, 3)
    imagined: NDArray[np.uint8]  # (Hp, s, s, 3) decoded frames
    trace: tuple[float, ...]
    points: NDArray[np.float64]  # (Hp + 1, 2) tracked position per step, env units (may be empty)
    strokes: NDArray[np.float64]  # (K, 4) strokes in env units (may be empty)
    workspace: tuple[float, float, float, float]  # x_min, y_min, x_max, y_max
    transpose: bool  # env x is the image row (D4RL maze convention)
    cost: float


def _panel(image: NDArray[np.uint8], label: str) -> NDArray[np.uint8]:
    small = image.shape[0] < _PANEL
    interp = cv2.INTER_NEAREST if small else cv2.INTER_AREA
    out: NDArray[np.uint8] = np.ascontiguousarray(
        cv2.resize(image, (_PANEL, _PANEL), interpolation=interp), dtype=np.uint8
    )
    cv2.putText(out, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 2, cv2.LINE_AA)
    cv2.putText(out, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, _WHITE, 1, cv2.LINE_AA)
    return out


def _to_pixels(xy: NDArray[np.float64], data: PreviewData) -> NDArray[np.int32]:
    x0, y0, x1, y1 = data.workspace
    u = (xy[:, 0] - x0) / max(x1 - x0, 1e-9)
    v = (xy[:, 1] - y0) / max(y1 - y0, 1e-9)
    if data.transpose:
        u, v = v, u
    return np.stack([u * _PANEL, v * _PANEL], axis=1).round().astype(np.int32)


def plan_overlay(data: PreviewData) -> NDArray[np.uint8]:
    """The observation with the plan drawn over it (path of the tracked point, or strokes)."""
    img = _panel(data.observation, "plan")
    if len(data.points) > 1:
        pts = _to_pixels(data.points, data)
        cv2.polylines(img, [pts.reshape(-1, 1, 2)], False, _PATH, 2, cv2.LINE_AA)
        for p in pts[1:]:
            cv2.circle(img, (int(p[0]), int(p[1])), 3, _PATH, -1, cv2.LINE_AA)
    for stroke in data.strokes:
        a, b = _to_pixels(stroke.reshape(2, 2), data)
        cv2.arrowedLine(img, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), _PATH, 2, cv2.LINE_AA)
    return img


def cost_curve(trace: tuple[float, ...]) -> NDArray[np.uint8]:
    """The best cost per iteration as a small line plot."""
    img = np.full((_PANEL, 2 * _PANEL, 3), 255, np.uint8)
    cv2.putText(img, "cost per iteration", (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    values = np.asarray(trace, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return img
    lo, hi = float(values.min()), float(values.max())
    span = hi - lo if hi > lo else 1.0
    xs = np.linspace(10, 2 * _PANEL - 10, values.size) if values.size > 1 else np.array([10.0])
    ys = _PANEL - 20 - (values - lo) / span * (_PANEL - 50)
    pts = np.stack([xs, ys], axis=1).round().astype(np.int32)
    cv2.polylines(img, [pts.reshape(-1, 1, 2)], False, _CURVE, 2, cv2.LINE_AA)
    label = f"{hi:.4g} -> {values[-1]:.4g}"
    cv2.putText(img, label, (6, _PANEL - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    return img


def contact_sheet(data: PreviewData) -> NDArray[np.uint8]:
    """Row 1: observation, imagined frames, goal. Row 2: the plan overlay and the cost curve."""
    top = [_panel(data.observation, "observation")]
    top += [_panel(f, f"imagined {i + 1}") for i, f in enumerate(data.imagined)]
    top.append(_panel(data.goal, "goal"))
    row1 = np.concatenate(top, axis=1)
    row2 = np.concatenate([plan_overlay(data), cost_curve(data.trace)], axis=1)
    pad = np.full((_PANEL, max(0, row1.shape[1] - row2.shape[1]), 3), 255, np.uint8)
    row2 = np.concatenate([row2, pad], axis=1)[:, : row1.shape[1]]
    if row2.shape[1] < row1.shape[1]:  # fewer top panels than the bottom row needs
        row1 = np.concatenate(
            [row1, np.full((_PANEL, row2.shape[1] - row1.shape[1], 3), 255, np.uint8)], axis=1
        )
    return np.concatenate([row1, row2], axis=0)


def animation_gif(data: PreviewData, frame_ms: int = 400) -> bytes:
    """Animated GIF: observation, each imagined frame, then the goal."""
    frames = [_panel(data.observation, "observation")]
    frames += [_panel(f, f"imagined {i + 1}") for i, f in enumerate(data.imagined)]
    frames.append(_panel(data.goal, "goal"))
    images = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    images[0].save(
        buf, format="GIF", save_all=True, append_images=images[1:], duration=frame_ms, loop=0
    )
    return buf.getvalue()


def html_page(data: PreviewData) -> str:
    """A self-contained page: every image is a data URI; a script marks when all have loaded."""
    sheet = base64.b64encode(encode_png(contact_sheet(data))).decode()
    gif = base64.b64encode(animation_gif(data)).decode()
    title = html.escape(f"plan {data.plan_id} ({data.model})")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:1.5em;background:#fafafa}}
img{{max-width:100%;border:1px solid #ccc;background:#fff}}</style></head>
<body data-images-loaded="0">
<h1>{title}</h1>
<p>final cost {data.cost:.6g}; {len(data.trace)} iterations;
{len(data.imagined)} imagined steps.</p>
<h2>Observation, imagined future, goal; plan and cost curve</h2>
<img id="sheet" alt="contact sheet" src="data:image/png;base64,{sheet}">
<h2>Imagined rollout</h2>
<img id="rollout" alt="imagined rollout" src="data:image/gif;base64,{gif}">
<script>
window.addEventListener("load", () => {{
  const ok = Array.from(document.images).filter((i) => i.complete && i.naturalWidth > 0);
  document.body.dataset.imagesLoaded = String(ok.length);
}});
</script>
</body></html>
"""


def overlay_inputs(
    rails: Guardrails,
    labels: tuple[str, ...],
    states: NDArray[np.float64],
    actions: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The tracked point's probed path and, for stroke envs, the strokes, in env units."""
    if rails.step_kind == "stroke":
        return np.zeros((0, 2)), actions.reshape(-1, 4)
    for name in rails.points:
        if f"{name}_x" in labels and f"{name}_y" in labels:
            ix, iy = labels.index(f"{name}_x"), labels.index(f"{name}_y")
            return states[:, [ix, iy]], np.zeros((0, 4))
    return np.zeros((0, 2)), np.zeros((0, 4))
