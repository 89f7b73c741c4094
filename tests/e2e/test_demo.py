"""``worldplan demo`` end to end on a shipped bundle, with a tiny planning budget."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from worldplan.cli import app

ROOT = Path(__file__).resolve().parents[2]


def test_demo_writes_episode_and_preview(tmp_path: Path) -> None:
    args = ["demo", "--env", "umaze", "--models-dir", str(ROOT / "models"), "--out",
            str(tmp_path), "--max-steps", "10", "--samples", "8", "--iterations", "2"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "maze-umaze" in result.output
    summary = json.loads((tmp_path / "demo.json").read_text())
    assert summary["steps"] == 10 or summary["success"]
    assert summary["plan_ids"][0] is not None
    with Image.open(tmp_path / "episode.gif") as gif:
        assert gif.n_frames == summary["steps"] + 1
    with Image.open(tmp_path / "preview.png") as png:
        assert png.size[0] > 500
    assert "data:image/png;base64," in (tmp_path / "preview.html").read_text()
