"""Smoke tests of ``worldplan bench sims`` on our envs only (no peer venvs), tiny step counts."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from typer.testing import CliRunner

from sims import _peer_bench, bench
from worldplan.cli import app

TINY = ["--steps", "4", "--warmup", "1", "--repeats", "2", "--image-size", "32"]


def _run(args: list[str]) -> Any:
    return CliRunner().invoke(app, ["bench", "sims", *args])


def test_cli_times_our_envs_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "res" / "sims.json"
    args = ["--no-peers", *TINY, "--image-size", "48", "--env", "pusht", "--env", "maze-tworoom"]
    result = _run([*args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["config"]["image_sizes"] == [32, 48]
    assert doc["peers"] == {}
    assert [r["key"] for r in doc["ours"]] == ["pusht", "maze-tworoom"]
    for res in doc["ours"]:
        assert res["available"] is True
        assert res["state_switch"] == bench.state_only_kwargs(res["env_id"])
        assert (res["state"] is None) == (res["state_switch"] is None)
        assert set(res["pixels"]) == {"32", "48"}
        for timing in res["pixels"].values():
            assert len(timing["runs_per_s"]) == len(timing["cpu_runs_per_s"]) == 2
            assert timing["median_per_s"] > 0
            assert timing["cpu_median_per_s"] > 0
            assert timing["steps"] == 4
    assert [(r["env"], r["image_size"]) for r in doc["rows"]] == [
        ("pusht", 32),
        ("pusht", 48),
        ("maze-tworoom", 32),
        ("maze-tworoom", 48),
    ]
    table = result.stdout.splitlines()  # the progress bar goes to stderr
    assert table[0].split()[:2] == ["env", "image"]
    assert any(line.startswith("maze-tworoom") and " 48 " in line for line in table)
    assert not list(out.parent.glob(".*tmp"))  # atomic write leaves no temp file


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--image-size", "8"], "image sizes"),
        (["--repeats", "0"], "repeats"),
        (["--env", "cartpole"], "envs must be among"),
        (["--clock", "sundial"], "clock must be"),
    ],
)
def test_cli_rejects_bad_options(tmp_path: Path, args: list[str], message: str) -> None:
    result = _run(["--no-peers", *args, "--json", str(tmp_path / "x.json")])
    assert result.exit_code != 0
    assert message in result.output
    assert not (tmp_path / "x.json").exists()


def test_state_only_switch_is_found_from_the_constructor() -> None:
    assert bench.state_only_kwargs("worldplan/Maze-v0") == {"render_pixels": False}
    gym.register(id="worldplan-test/Plain-v0", entry_point=lambda: None)
    try:
        assert bench.state_only_kwargs("worldplan-test/Plain-v0") is None
    finally:
        gym.registry.pop("worldplan-test/Plain-v0")


def test_measure_checks_frame_size() -> None:
    def make() -> gym.Env[Any, Any]:
        return gym.make("worldplan/Maze-v0", image_size=32, disable_env_checker=True)

    timing = _peer_bench.measure(
        make, lambda _e, o: o["pixels"], steps=3, warmup=0, repeats=3, seed=1, size=32
    )
    assert len(timing.runs) == len(timing.cpu_runs) == 3
    assert sorted(timing.runs)[1] == timing.median
    assert sorted(timing.cpu_runs)[1] == timing.cpu_median
    with pytest.raises(ValueError, match=r"frame must be \(40, 40, 3\)"):
        _peer_bench.measure(
            make, lambda _e, o: o["pixels"], steps=3, warmup=0, repeats=1, seed=1, size=40
        )


def test_missing_env_is_reported_not_raised() -> None:
    gym.register(id="worldplan-test/Missing-v0", entry_point="sims.no_such_module:Env")
    try:
        case = bench.OurCase("missing", "worldplan-test/Missing-v0", {})
        res = bench.bench_ours(case, bench.BenchConfig(peers=False, steps=2, repeats=1))
    finally:
        gym.registry.pop("worldplan-test/Missing-v0")
    assert res["available"] is False
    assert "sims.no_such_module" in res["error"]


def test_rows_and_table_compute_ratios() -> None:
    config = bench.BenchConfig(image_sizes=(96,), envs=("pusht",))
    ours = [
        {
            "available": True,
            "state": None,
            "pixels": {96: {"median_per_s": 3000.0, "cpu_median_per_s": 1500.0}},
        }
    ]
    peers = {
        "gym-pusht": {
            "sizing": {"gym_pusht/PushT-v0": "observation_width/height"},
            "results": [
                {
                    "case": "gym_pusht/PushT-v0",
                    "mode": "state",
                    "size": None,
                    "median_per_s": 4e3,
                    "cpu_median_per_s": 4e3,
                },
                {
                    "case": "gym_pusht/PushT-v0",
                    "mode": "pixels",
                    "size": 96,
                    "median_per_s": 600.0,
                    "cpu_median_per_s": 500.0,
                },
            ],
        },
        "stable-worldmodel": {"error": "boom"},
    }
    assert bench.build_rows(ours, peers, config)[0].frames_ratio == pytest.approx(3.0)  # cpu
    wall = bench.BenchConfig(image_sizes=(96,), envs=("pusht",), clock="wall")
    rows = bench.build_rows(ours, peers, wall)
    assert [r.peer for r in rows] == ["gym_pusht/PushT-v0", "swm/PushT-v1"]
    assert rows[0].frames_ratio == pytest.approx(5.0)
    assert rows[0].steps_ratio is None  # ours has no pixel-off switch here
    assert rows[1].frames_ratio is None
    assert rows[1].note == "peer failed"
    doc_rows = [
        {**r.__dict__, "frames_ratio": r.frames_ratio, "steps_ratio": r.steps_ratio} for r in rows
    ]
    table = bench.format_table(doc_rows, clock="wall")
    assert "5.0x" in table
    assert "wall-clock time" in table
    assert "observation_width/height" in table


def test_peer_script_imports_env_module_without_package_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "peerpkg"
    (pkg / "envs").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('heavy training stack')\n")
    (pkg / "envs" / "__init__.py").write_text("raise ImportError('heavy too')\n")
    (pkg / "envs" / "toy.py").write_text(
        textwrap.dedent(
            """
            import gymnasium as gym
            import numpy as np

            class Toy(gym.Env):
                observation_space = gym.spaces.Box(-1, 1, (1,))
                action_space = gym.spaces.Box(-1, 1, (1,))

                def reset(self, *, seed=None, options=None):
                    super().reset(seed=seed)
                    return np.zeros(1, np.float32), {}

                def step(self, action):
                    return np.zeros(1, np.float32), 0.0, False, False, {}
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m.startswith("peerpkg")]:
        monkeypatch.delitem(sys.modules, name)
    _peer_bench.import_env_module("peerpkg.envs.toy")
    toy = sys.modules["peerpkg.envs.toy"]
    env = toy.Toy()
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, np.zeros(1))
    for name in [m for m in sys.modules if m.startswith("peerpkg")]:
        monkeypatch.delitem(sys.modules, name)


def test_rounds_pool_into_one_median() -> None:
    def doc(rates: dict[int | None, float]) -> dict[str, Any]:
        results = [
            {
                "case": "swm/PushT-v1",
                "mode": "state" if size is None else "pixels",
                "size": size,
                "median_per_s": rate,
                "runs_per_s": [rate],
                "cpu_median_per_s": rate / 2,
                "cpu_runs_per_s": [rate / 2],
                "steps": 10,
            }
            for size, rate in rates.items()
        ]
        return {"sizing": {}, "results": results}

    rounds = [doc({None: 1.0, 96: 10.0}), doc({None: 3.0, 96: 30.0}), doc({None: 2.0, 96: 5.0})]
    pooled = bench._merge_peer(rounds)
    by_size = {r["size"]: r for r in pooled["results"]}
    assert by_size[None]["runs_per_s"] == [1.0, 3.0, 2.0]
    assert by_size[None]["median_per_s"] == 2.0
    assert by_size[None]["cpu_median_per_s"] == 1.0
    assert by_size[96]["median_per_s"] == 10.0
    assert bench._merge_peer([*rounds, {"error": "exit 1"}]) == {"error": "exit 1"}


class _BrokenEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    action_space = gym.spaces.Box(-1, 1, (1,))

    def __init__(self, image_size: int = 32) -> None:
        self.size = image_size

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        return {"pixels": np.zeros((self.size, self.size, 3), np.uint8)}, {}

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict]:
        raise RuntimeError("physics exploded")


def test_env_that_raises_is_reported_in_its_row() -> None:
    gym.register(id="worldplan-test/Broken-v0", entry_point=_BrokenEnv)
    try:
        case = bench.OurCase("broken", "worldplan-test/Broken-v0", {})
        config = bench.BenchConfig(peers=False, steps=2, repeats=1, image_sizes=(32,))
        res = bench.bench_ours(case, config)
    finally:
        gym.registry.pop("worldplan-test/Broken-v0")
    assert res["available"] is False
    assert res["error"] == "RuntimeError: physics exploded"


def test_peer_script_prints_one_json_document(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    toy = _peer_bench.PeerCase(
        package="gymnasium",
        module="sims",
        env_id="worldplan/Maze-v0",
        entry_point="sims.maze:MazeEnv",
        import_mode="package",
        state_kwargs={"render_pixels": False},
        pixel_kwargs={"image_size": "{size}", "layout": "tworoom"},
        frame_from="render",
        sizing="drawn at S",
    )
    monkeypatch.setitem(_peer_bench.PEER_CASES, "toy/Maze", toy)
    args = ["--case", "toy/Maze", "--size", "32", "--size", "40", "--steps", "3", "--warmup", "0"]
    _peer_bench.main([*args, "--repeats", "2"])
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    doc = json.loads(out[0])
    assert doc["versions"]["gymnasium"] == gym.__version__
    assert doc["sizing"] == {"toy/Maze": "drawn at S"}
    modes = [(r["mode"], r["size"], len(r["runs_per_s"])) for r in doc["results"]]
    assert modes == [("state", None, 2), ("pixels", 32, 2), ("pixels", 40, 2)]
