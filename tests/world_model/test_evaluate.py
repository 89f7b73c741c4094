"""eval-model: window alignment, baselines, splits, ranking proxy, CLI; bench model CLI smoke."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_model import TinyEncoder
from typer.testing import CliRunner

from world_model import data as wm_data
from world_model import evaluate as ev
from world_model.bundle import read_manifest, save_bundle
from world_model.heads import DecoderConfig, ProbeConfig
from world_model.model import ModelSpec, NormStats, WorldModel
from world_model.predictor import PredictorConfig
from worldplan.cli import app

ENV = "worldplan/PushT-v0"
FS, HIST = 2, 2


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("evaldata") / "data.h5"
    cfg = wm_data.CollectConfig(ENV, episodes=4, steps=24, image_size=32, seed=3)
    wm_data.collect(cfg, path, progress=False)
    wm_data.encode_dataset(path, TinyEncoder(), progress=False)
    return path


def _model(path: Path, residual: bool = True) -> WorldModel:
    meta = wm_data.read_meta(path)
    labels, _ = wm_data.probe_targets(ENV, meta["state_labels"], np.zeros((1, 20)))
    enc = TinyEncoder()
    spec = ModelSpec(
        env_id=ENV,
        frameskip=FS,
        env_action_dim=meta["env_action_dim"],
        history=HIST,
        image_size=32,
        state_labels=labels,
        encoder_id=enc.encoder_id,
        encoder_sha256=enc.weights_sha256,
    )
    p, s = meta["proprio_dim"], len(labels)
    pred = PredictorConfig(16, 8, spec.action_dim, p, history=HIST, depth=1, heads=2, width=8,
                           mlp_dim=16, dropout=0.0, residual=residual)  # fmt: skip
    torch.manual_seed(0)
    model = WorldModel(spec, pred, ProbeConfig(16, 8, p, s, width=8, queries=1, heads=2),
                       DecoderConfig(16, 8, image_size=16, channels=16),
                       stats=NormStats.identity(spec.action_dim, p, s))  # fmt: skip
    return model.eval()


def _synthetic_held_out(lengths: list[int]) -> ev.HeldOut:
    """Episodes whose features, actions and states equal their frame / step index."""
    feats, acts, props, states = [], [], [], []
    for n in lengths:
        t = np.arange(n + 1, dtype=np.float32)
        feats.append(np.broadcast_to(t[:, None, None], (n + 1, 16, 8)).copy())
        acts.append(np.stack([np.arange(n), -np.arange(n)], axis=1).astype(np.float32))
        props.append(np.stack([t, t, t, t], axis=1))
        states.append(np.repeat(t[:, None], 6, axis=1))
    return ev.HeldOut([f"ep{i}" for i in range(len(lengths))], feats, acts, props, states,
                      [], [], "synthetic")  # fmt: skip


def test_windows_align_context_actions_and_targets(dataset: Path) -> None:
    model = _model(dataset)
    held = _synthetic_held_out([20])
    w = ev.make_windows(model, held, steps=3, per_episode=4)
    t0 = w.context.visual[:, -1, 0, 0]  # the last context frame's index
    assert torch.equal(w.context.visual[:, 0, 0, 0], t0 - FS)
    assert t0.min() == (HIST - 1) * FS
    assert t0.max() == 20 - 3 * FS
    for h in range(3):
        assert torch.equal(w.target_visual[:, h, 0, 0], t0 + (h + 1) * FS)
        assert torch.equal(w.target_state[:, h, 0], t0 + (h + 1) * FS)
        # planning action h = env actions t0 + h f .. t0 + h f + f - 1, concatenated
        assert torch.equal(w.actions[:, h, 0], t0 + h * FS)
        assert torch.equal(w.actions[:, h, 2], t0 + h * FS + 1)
    assert torch.equal(w.past_actions[:, 0, 0], t0 - FS)
    assert torch.equal(w.last_state[:, 0], t0)


def test_windows_skip_short_episodes_and_report_none(dataset: Path) -> None:
    model = _model(dataset)
    w = ev.make_windows(model, _synthetic_held_out([3, 20]), steps=3, per_episode=2)
    assert len(w.actions) == 2
    with pytest.raises(ValueError, match="long enough"):
        ev.make_windows(model, _synthetic_held_out([5]), steps=3, per_episode=2)


def test_copy_predictor_equals_copy_last_baseline(dataset: Path) -> None:
    model = _model(dataset, residual=True)  # untrained residual predictor: copies the last frame
    info = {"dataset": "elsewhere.h5"}
    result = ev.evaluate_model(model, dataset, ev.EvalConfig(horizons=(1, 4, 9)), info)
    assert result["held_out"].startswith("all 4 episodes")
    rows = result["horizons"]
    assert [r["measured_env_steps"] for r in rows] == [2, 4, 10]
    assert [r["planning_steps"] for r in rows] == [1, 2, 5]
    for r in rows:
        assert r["latent_mse"] == pytest.approx(r["copy_latent_mse"], rel=1e-6)
        assert r["copy_latent_mse"] > 0
    assert rows[-1]["copy_latent_mse"] > rows[0]["copy_latent_mse"]  # things move over time


def test_a_changed_predictor_is_scored_differently(dataset: Path) -> None:
    model = _model(dataset, residual=False)
    cfg = ev.EvalConfig(horizons=(2,))
    row = ev.evaluate_model(model, dataset, cfg, {})["horizons"][0]
    assert row["latent_mse"] != pytest.approx(row["copy_latent_mse"], rel=1e-3)


def test_validation_split_of_the_training_dataset(dataset: Path) -> None:
    model = _model(dataset)
    info = {"dataset": dataset.name, "episodes": 4,
            "train_config": {"val_fraction": 0.25, "seed": 1}}  # fmt: skip
    result = ev.evaluate_model(model, dataset, ev.EvalConfig(horizons=(2,)), info)
    assert result["episodes"] == 1
    assert result["held_out"].startswith("validation split")
    with pytest.raises(ValueError, match="--split val"):
        ev.evaluate_model(model, dataset, ev.EvalConfig(split="val"), {"dataset": "other.h5"})


def test_env_mismatch_is_rejected(dataset: Path) -> None:
    model = _model(dataset)
    object.__setattr__(model, "env_id", "worldplan/Maze-v0")
    with pytest.raises(ValueError, match="model is for worldplan/Maze-v0"):
        ev.evaluate_model(model, dataset, ev.EvalConfig(), {})


def test_spearman() -> None:
    x = np.arange(10, dtype=np.float64)
    assert ev.spearman(x, x**3) == pytest.approx(1.0)
    assert ev.spearman(x, -x) == pytest.approx(-1.0)
    y = np.array([1, 2, 2, 3, 5, 4, 7, 6, 9, 8], dtype=np.float64)
    rx, ry = x - x.mean(), ev._ranks(y) - ev._ranks(y).mean()
    expected = (rx * ry).sum() / math.sqrt((rx**2).sum() * (ry**2).sum())
    assert ev.spearman(x, y) == pytest.approx(expected)
    assert ev._ranks(np.array([3.0, 1.0, 3.0])).tolist() == [1.5, 0.0, 1.5]


def test_episode_ranking_is_reported(dataset: Path) -> None:
    result = ev.evaluate_model(_model(dataset), dataset, ev.EvalConfig(horizons=(2,)), {})
    ranking = result["episode_ranking"]
    assert ranking["pairs"] > 10
    for key in ("spearman_latent", "spearman_pixels", "near_spearman_latent"):
        assert -1.0 <= ranking[key] <= 1.0
    assert result["ranking_proxy"] == []  # no encoder loaded: the rendered proxy is skipped


def test_encoder_ranking_proxy_next_to_pixels(dataset: Path) -> None:
    model = _model(dataset)
    model.attach_encoder(TinyEncoder())
    cfg = ev.EvalConfig(horizons=(2,), proxy_states=12)
    result = ev.evaluate_model(model, dataset, cfg, {})
    rows = result["ranking_proxy"]
    assert [r["variant"] for r in rows] == ["block", "agent"]
    for row in rows:
        assert row["n"] == 12
        assert row["encoder"]["spearman"] != row["pixels"]["spearman"]
        assert -1.0 <= row["encoder"]["spearman"] <= 1.0
        for key in ("near_spearman", "auc"):  # NaN when too few states fall near/far
            value = row["encoder"][key]
            assert math.isnan(value) or -1.0 <= value <= 1.0
    assert "ranking proxy (block, 12 states)" in ev.format_table(result)


def test_eval_model_cli(dataset: Path, tmp_path: Path) -> None:
    bundle = save_bundle(_model(dataset), tmp_path / "bundle", {}, {"dataset": "x.h5"})
    assert read_manifest(bundle)["env_id"] == ENV
    out = tmp_path / "eval.json"
    args = ["eval-model", "--bundle", str(bundle), "--data", str(dataset), "--horizons", "1,3",
            "--out", str(out), "--threads", "1"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "copy-last" in result.output
    saved = json.loads(out.read_text())
    assert [r["env_steps"] for r in saved["horizons"]] == [1, 3]
    bad = CliRunner().invoke(app, [*args[:5], "--horizons", "0"])
    assert bad.exit_code == 2  # a usage error, not a crash
    assert "Invalid value" in bad.output


def test_bench_model_cli(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = ["bench", "model", "--num-patches", "16", "--embed-dim", "8", "--batch", "4",
            "--horizon", "2", "--repeats", "1", "--matmul-size", "64", "--threads", "1",
            "--json", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    rows = {r["name"]: r for r in saved["rows"]}
    assert set(rows) == {"rollout", "rollout+backward"}
    assert rows["rollout"]["items_per_call"] == 8
    assert rows["rollout+backward"]["flops_per_item"] > rows["rollout"]["flops_per_item"] > 0
    assert saved["peak_matmul_flops_per_s"] > 0
