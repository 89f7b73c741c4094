"""Outputs of an evaluation: atomic JSON, videos and the budget plot."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from clients.closed_loop import Episode
from clients.report import atomic_write, budget_plot, write_json, write_video
from clients.stats import summarise


def frames(n: int) -> list[np.ndarray]:
    return [np.full((24, 24, 3), 10 * i, dtype=np.uint8) for i in range(n)]


def test_json_is_written_whole_with_nan_as_null(tmp_path: Path) -> None:
    path = tmp_path / "a" / "r.json"
    write_json(path, {"x": float("nan"), "y": [np.float32(1.5)], "z": (1, 2)})
    assert json.loads(path.read_text()) == {"x": None, "y": [1.5], "z": [1, 2]}


def test_a_failed_write_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "r.json"

    def broken(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, broken)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_videos_show_observation_beside_goal(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"ep{suffix}"
    write_video(path, frames(6), np.zeros((24, 24, 3), np.uint8))
    cap = cv2.VideoCapture(str(path))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 6
    assert cap.get(cv2.CAP_PROP_FRAME_WIDTH) == 24 * 2 + 4
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_video_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.gif or \.mp4"):
        write_video(tmp_path / "a.avi", frames(2), frames(1)[0])
    with pytest.raises(ValueError, match="at least one frame"):
        write_video(tmp_path / "a.gif", [], frames(1)[0])


def test_budget_plot_draws_points_at_the_success_rates(tmp_path: Path) -> None:
    def summary(name: str, wins: int) -> object:
        eps = [Episode("e", name, i, "distance", 1.0, success=i < wins) for i in range(4)]
        for e in eps:
            e.final_metric = e.best_metric = 0.0
        return summarise(name, eps)

    planned = [summary("cem@1", 1), summary("cem@9", 4)]
    path = tmp_path / "plot.png"
    budget_plot(path, ["1", "9"], planned, [summary("noop", 0)], "title")  # type: ignore[arg-type]
    img = cv2.imread(str(path))
    assert img.shape == (440, 720, 3)
    blue = (img[:, :, 0] > 150) & (img[:, :, 2] < 80)  # the planner's colour (BGR)
    rows = np.flatnonzero(blue.any(axis=1))
    # The 100% point sits at the top of the axis (y = 40), the 25% point lower.
    assert rows.min() <= 44
    assert rows.max() > 300
    with pytest.raises(ValueError, match="one summary per budget"):
        budget_plot(path, ["1"], planned, [], "t")  # type: ignore[arg-type]
