"""``worldplan eval`` end to end through a fake service (CliRunner)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import pytest
import typer
from clients_fakes import KEY, FakeService, maze_model
from PIL import Image
from typer.testing import CliRunner

import clients.cli


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(typer.Typer(), name="bench")
    clients.cli.register(app, typer.Typer())
    return app


@pytest.fixture
def fake() -> Iterator[FakeService]:
    service = FakeService([maze_model("tworoom"), maze_model("umaze")])
    keys: list[str] = []

    def factory(api_key: str) -> httpx.BaseTransport:
        keys.append(api_key)
        return service.transport()

    clients.cli.set_transport_factory(factory)
    yield service
    clients.cli.set_transport_factory(None)


def test_eval_writes_results_plot_and_videos(
    app: typer.Typer, fake: FakeService, tmp_path: Path
) -> None:
    out = tmp_path / "res" / "results.json"
    args = ["eval", "--env", "tworoom", "--episodes", "2", "--seed", "5", "--budgets", "3,8"]
    args += ["--api-key", KEY, "--out", str(out), "--video", str(tmp_path / "videos")]
    args += ["--execute-steps", "2", "--max-steps", "60", "--upload", "multipart"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    for name in ("cem@3", "cem@8", "random", "noop", "95% CI", "2/2 = 1.00"):
        assert name in result.output
    data = json.loads(out.read_text())
    assert data["seeds"] == [5, 6]
    assert data["env_id"] == "worldplan/Maze-v0"
    assert data["model"]["name"] == "maze-tworoom"
    protocol = data["goal_protocol"]
    assert protocol["goal_steps"] == 25
    assert protocol["goal_policy"] == {"kind": "scripted", "options": {}, "burn_in": 0}
    assert [s["controller"] for s in data["summaries"]] == ["cem@3", "cem@8"]
    assert [s["controller"] for s in data["baselines"]] == ["random", "noop"]
    assert len(data["episodes"]) == 8
    logged = out.with_suffix(".episodes.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in logged] == data["episodes"]
    assert all(e["steps"] <= 60 for e in data["episodes"])
    budgets = sorted(
        s.options["budget"].get("iterations") for s in fake.seen if s.path == "/v1/plan"
    )
    assert set(budgets) == {3, 8}
    assert {s.kind for s in fake.seen if s.path == "/v1/plan"} == {"multipart"}
    plot = cv2.imread(str(out.with_suffix(".png")))
    assert plot is not None
    assert plot.shape == (440, 720, 3)
    videos = sorted(p.name for p in (tmp_path / "videos").iterdir())
    assert "Maze-v0_cem-3_seed5.gif" in videos
    assert len(videos) == 8
    assert not [p for p in (tmp_path / "videos").iterdir() if p.name.startswith(".")]
    with Image.open(tmp_path / "videos" / "Maze-v0_cem-3_seed5.gif") as gif:
        assert gif.n_frames > 1
        assert gif.size == (32 * 2 + 4, 32)


def test_eval_refuses_a_server_without_a_model_for_the_env(
    app: typer.Typer, fake: FakeService, tmp_path: Path
) -> None:
    args = ["eval", "--env", "pusht", "--episodes", "1", "--out", str(tmp_path / "r.json")]
    result = CliRunner().invoke(app, [*args, "--api-key", KEY])
    assert result.exit_code == 1
    assert "no model for worldplan/PushT-v0" in result.output
    assert not (tmp_path / "r.json").exists()


def test_eval_reports_the_servers_message(
    app: typer.Typer, fake: FakeService, tmp_path: Path
) -> None:
    args = ["eval", "--env", "umaze", "--episodes", "1", "--out", str(tmp_path / "r.json")]
    result = CliRunner().invoke(app, [*args, "--api-key", "wrong"])
    assert result.exit_code == 1
    assert "HTTP 401: invalid API key" in result.output


def test_eval_without_server_or_in_process_factory_says_what_to_do(
    app: typer.Typer, tmp_path: Path
) -> None:
    result = CliRunner().invoke(app, ["eval", "--env", "pusht", "--out", str(tmp_path / "r.json")])
    assert result.exit_code != 0
    assert "--server" in result.output


def test_eval_rejects_bad_budgets(app: typer.Typer, fake: FakeService) -> None:
    result = CliRunner().invoke(app, ["eval", "--env", "tworoom", "--budgets", "10,x"])
    assert result.exit_code != 0
    assert "comma-separated iteration counts" in result.output


class FailingService(FakeService):
    """Plans ``plans`` times, then answers every plan with a server error."""

    def __init__(self, plans: int) -> None:
        super().__init__([maze_model("tworoom")])
        self.plans = plans

    def _plan(self, request: httpx.Request, seen: Any) -> httpx.Response:
        if self.plans == 0:
            self._read(request, seen)
            return httpx.Response(500, json={"detail": "the planner's worker died"})
        self.plans -= 1
        return super()._plan(request, seen)


def test_a_failed_run_keeps_its_finished_episodes(app: typer.Typer, tmp_path: Path) -> None:
    service = FailingService(plans=2)
    clients.cli.set_transport_factory(lambda _key: service.transport())
    try:
        out = tmp_path / "r.json"
        args = ["eval", "--env", "tworoom", "--episodes", "3", "--max-steps", "25"]
        args += ["--no-baselines", "--api-key", KEY, "--out", str(out)]
        result = CliRunner().invoke(app, args)
    finally:
        clients.cli.set_transport_factory(None)
    assert result.exit_code == 1
    assert "the planner's worker died" in result.output
    assert not out.exists()
    log = out.with_suffix(".episodes.jsonl")
    assert str(log) in result.output
    episodes = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["seed"] for e in episodes] == [100_000, 100_001]  # one plan each, then the error
