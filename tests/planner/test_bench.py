"""Tests of the push-T planner benchmark (``worldplan bench planner --model bundle``).

The peers' own code (stable-worldmodel) lives in a benchmark-only venv; here the
adapter, the DINO-WM loop, the problems, the rows and the CLI are tested in-process.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from planner import bench_peers
from planner._swm_peer import LatentCostable, solve_pairs
from planner.analytic import PointMassModel
from planner.bench_peers import Pair, PushTBenchConfig
from planner.config import ObjectiveConfig
from world_model.model import WorldModel
from worldplan.cli import app

OBJ = ObjectiveConfig()


def _point_pair(
    model: PointMassModel, start: tuple[float, float], goal: tuple[float, float]
) -> Pair:
    return Pair(
        seed=0,
        obs=model.encode(torch.tensor([[start]])),
        goal=model.encode(torch.tensor([[goal]])),
        agent_block_px=0.0,
        block_moved_px=0.0,
    )


@pytest.fixture(scope="module")
def small_model() -> WorldModel:
    """A push-T-shaped model with the recipe's encoder and a tiny predictor."""
    return bench_peers.random_pusht_model(depth=1, width=16, heads=2, mlp_dim=16)


def test_dinowm_cem_reaches_the_analytic_optimum() -> None:
    model = PointMassModel()
    pair = _point_pair(model, (150.0, 300.0), (330.0, 220.0))
    gen = torch.Generator().manual_seed(0)
    plan = bench_peers.dinowm_cem(
        model, pair, horizon=5, samples=300, topk=30, steps=30, objective=OBJ, generator=gen
    )
    assert plan.shape == (5, model.action_dim)
    end = model.rollout(pair.obs, plan[None]).proprio[0, -1] * model.extent + model.centre
    assert float((end - torch.tensor([330.0, 220.0])).norm()) < 3.0
    idle = bench_peers.score(model, pair, torch.zeros(5, model.action_dim), OBJ)
    assert bench_peers.score(model, pair, plan, OBJ) < idle / 100


def test_dinowm_cem_is_deterministic_given_the_generator() -> None:
    model = PointMassModel()
    pair = _point_pair(model, (100.0, 100.0), (200.0, 150.0))
    kw: dict[str, Any] = {"horizon": 3, "samples": 20, "topk": 4, "steps": 3, "objective": OBJ}
    a = bench_peers.dinowm_cem(model, pair, generator=torch.Generator().manual_seed(1), **kw)
    b = bench_peers.dinowm_cem(model, pair, generator=torch.Generator().manual_seed(1), **kw)
    c = bench_peers.dinowm_cem(model, pair, generator=torch.Generator().manual_seed(2), **kw)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_costable_adapter_matches_the_shared_scorer() -> None:
    model = PointMassModel()
    pair = _point_pair(model, (150.0, 300.0), (330.0, 220.0))
    costable = LatentCostable(model, OBJ)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, 5, model.action_dim, generator=gen)  # (B, S, H, A) normalised
    info = {
        "obs_visual": pair.obs.visual.expand(2, 6, -1, -1, -1),
        "obs_proprio": pair.obs.proprio.expand(2, 6, -1, -1),
        "goal_visual": pair.goal.visual.expand(2, 6, -1, -1, -1),
        "goal_proprio": pair.goal.proprio.expand(2, 6, -1, -1),
    }
    cost = costable.get_cost(info, x)
    assert cost.shape == (2, 6)
    for b in range(2):
        for s in range(6):
            env_units = x[b, s] * model.action_std + model.action_mean
            want = bench_peers.score(model, pair, env_units, OBJ)
            assert float(cost[b, s]) == pytest.approx(want, rel=1e-5)
    assert torch.equal(costable.criterion(info, x), cost)


def test_solve_pairs_returns_env_unit_plans() -> None:
    model = PointMassModel()
    costable = LatentCostable(model, OBJ)
    seen: list[dict[str, torch.Tensor]] = []

    class FakeSolver:
        def solve(self, info: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            seen.append(info)
            return {"actions": torch.ones(1, 5, model.action_dim)}

    pairs = {k: torch.zeros(3, 1, 4, 2) for k in ("obs_visual", "goal_visual")}
    pairs |= {k: torch.zeros(3, 1, 2) for k in ("obs_proprio", "goal_proprio")}
    out = solve_pairs(FakeSolver(), costable, pairs, [0, 1, 2])
    assert len(out) == 3
    assert len(seen) == 3
    assert all(v.shape[0] == 1 for v in seen[0].values())
    assert torch.allclose(torch.tensor(out[0]["actions"]), torch.full((5, 10), 0.2))
    assert all(r["ms"] >= 0 for r in out)
    assert all(r["cpu_ms"] >= 0 for r in out)


def test_pairs_come_from_seeded_env_renders(small_model: WorldModel) -> None:
    pairs = bench_peers.make_pairs(small_model, 2, seed=3, goal_steps=25)
    again = bench_peers.make_pairs(small_model, 1, seed=3, goal_steps=25)
    enc = small_model.encoder
    assert enc is not None
    assert [p.seed for p in pairs] == [3, 4]
    assert pairs[0].obs.visual.shape == (1, 1, enc.num_patches, enc.embed_dim)
    assert torch.equal(pairs[0].obs.visual, again[0].obs.visual)
    assert torch.equal(pairs[0].goal.visual, again[0].goal.visual)
    assert not torch.equal(pairs[0].obs.visual, pairs[1].obs.visual)
    for p in pairs:
        assert not torch.equal(p.obs.visual, p.goal.visual)  # 25 scripted steps change the frame
        assert p.agent_block_px > 0


def test_load_model_prefers_a_bundle_and_labels_the_fallback(
    small_model: WorldModel, tmp_path: Path
) -> None:
    from world_model.bundle import save_bundle  # noqa: PLC0415

    save_bundle(small_model, tmp_path / "pusht")
    loaded, desc = bench_peers.load_model(tmp_path / "pusht")
    assert desc["kind"] == "bundle"
    probe = small_model.predictor.config
    assert loaded.predictor.config == probe
    for a, b in zip(loaded.parameters(), small_model.parameters(), strict=True):
        assert torch.equal(a, b)
    recipe_model, desc = bench_peers.load_model(tmp_path / "missing")
    assert desc["kind"] == "random-init"
    assert "RANDOM-INIT" in desc["label"]
    assert recipe_model.predictor.config.depth == 4  # the recipe's size, not the test's


def _row(group: str, method: str, ms: float, cost: float) -> dict[str, Any]:
    ident = {"group": group, "method": method, "mode": "cold", "settings": "s"}
    return bench_peers.make_row(
        ident,
        [{"ms": 2 * ms, "cpu_ms": ms}, {"ms": 6 * ms, "cpu_ms": 3 * ms}],
        ([cost, cost], [cost, cost], [0.0, 0.5]),
        ms / 2,
    )


def test_verdict_compares_each_of_ours_with_dinowm_and_its_swm_twin() -> None:
    rows = [
        _row("ours", "cem", 10.0, 0.5),
        _row("ours", "gradient", 40.0, 2.0),
        _row("DINO-WM", "cem (per-instance loop)", 200.0, 1.0),
        _row("stable-worldmodel", "CEMSolver", 20.0, 0.5),
        _row("stable-worldmodel", "GradientSolver", 20.0, 1.0),
    ]
    assert rows[0]["cpu_ms_p50"] == 10.0
    assert rows[0]["cpu_ms_p95"] == 30.0
    assert rows[0]["ms_p50"] == 20.0
    assert rows[0]["model_share"] == pytest.approx(0.5)
    assert rows[0]["out_of_bounds"] == 1
    assert rows[0]["max_excess"] == 0.5
    cem, grad = bench_peers.verdict(rows)
    assert cem["speedup_vs_dinowm"] == pytest.approx(20.0)
    assert cem["cost_le_dinowm"]
    assert cem["speedup_vs_swm"] == pytest.approx(2.0)
    assert cem["wall_speedup_vs_swm"] == pytest.approx(2.0)
    assert cem["cost_le_swm"]
    assert grad["speedup_vs_swm"] == pytest.approx(0.5)
    assert not grad["cost_le_swm"]
    assert not grad["cost_le_dinowm"]


def test_peer_command_and_env_share_the_settings(tmp_path: Path) -> None:
    cfg = PushTBenchConfig(samples=64, elites=8, iterations=7, grad_iterations=9, restarts=3)
    cmd = bench_peers.peer_command(Path("/venv/bin/python"), tmp_path, cfg)
    flags = dict(zip(cmd[3::2], cmd[4::2], strict=True))
    assert flags["--samples"] == "64"
    assert flags["--elites"] == "8"
    assert flags["--iterations"] == "7"
    assert flags["--grad-iterations"] == "9"
    assert flags["--restarts"] == "3"
    assert flags["--horizon"] == "5"
    assert flags["--bundle"] == str(tmp_path / "bundle")
    env = bench_peers._peer_env(2)
    assert env["PYTHONPATH"] == str(bench_peers.REPO_ROOT)
    assert env["OMP_NUM_THREADS"] == "2"


def test_config_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="elites"):
        PushTBenchConfig(samples=4, elites=5)
    with pytest.raises(ValueError, match="optimisers"):
        PushTBenchConfig(optimisers=("adam",))
    with pytest.raises(ValueError, match="pairs"):
        PushTBenchConfig(pairs=0)


def test_cli_bundle_mode_without_bundle_prints_labelled_table(tmp_path: Path) -> None:
    out = tmp_path / "pusht.json"
    args = [
        "bench",
        "planner",
        "--model",
        "bundle",
        "--bundle",
        str(tmp_path / "none"),
        "--pairs",
        "1",
        "--samples",
        "4",
        "--elites",
        "2",
        "--iterations",
        "1",
        "--grad-iterations",
        "1",
        "--restarts",
        "2",
        "--no-peers",
        "--no-batched",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "RANDOM-INIT" in result.output
    data = json.loads(out.read_text())
    methods = [(r["group"], r["method"]) for r in data["rows"]]
    assert methods == [
        ("-", "no planning (mean action)"),
        ("ours", "cem"),
        ("ours", "mppi"),
        ("ours", "gradient"),
        ("DINO-WM", "cem (per-instance loop)"),
    ]
    assert all(r["refused"] == 0 for r in data["rows"])
    assert all(r["cost_mean"] is not None for r in data["rows"])
    assert data["model"]["kind"] == "random-init"
    assert len(data["verdict"]) == 3


def test_cli_bundle_mode_rejects_bad_settings(tmp_path: Path) -> None:
    args = [
        "bench",
        "planner",
        "--model",
        "bundle",
        "--samples",
        "2",
        "--elites",
        "3",
        "--out",
        str(tmp_path / "x.json"),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0
    assert "elites" in result.output
    assert not (tmp_path / "x.json").exists()


def test_executed_clips_to_the_box_and_measures_the_excess() -> None:
    plan = torch.zeros(5, 10)
    inside, over = bench_peers.executed(plan, 5)
    assert torch.equal(inside, plan)
    assert over == 0.0
    plan[0, 0], plan[2, 3] = 2.5, -0.9  # one entry 1.5 out of the box
    plan[3, 0], plan[3, 1] = 0.9, 0.9  # a step of length 1.27 > 1 inside the box
    clipped, over = bench_peers.executed(plan, 5)
    assert float(clipped[0, 0]) == 1.0
    assert float(clipped[2, 3]) == pytest.approx(-0.9)
    assert float(clipped[3, 0]) == pytest.approx(0.9)
    assert over == pytest.approx(1.5)
    _, over_step = bench_peers.executed(clipped, 5)
    assert over_step == pytest.approx(0.9 * 2**0.5 - 1.0, rel=1e-5)
