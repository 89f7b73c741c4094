"""Training: end-to-end smoke, loss isolation, checkpoint resume, recipes, commands."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tiny_model import TinyEncoder
from typer.testing import CliRunner

from world_model import recipes
from world_model import train as train_mod
from world_model.bundle import WEIGHT_FILES, load_bundle, read_manifest
from world_model.data import (
    CollectConfig,
    WindowDataset,
    collect,
    compute_stats,
    encode_dataset,
    load_training_data,
)
from world_model.model import WorldModel
from world_model.train import TrainConfig, build_model, train
from world_model.types import Latent
from worldplan.cli import app

TINY = TrainConfig(
    steps=5, batch_size=4, lr=1e-3, warmup=1, history=2, frameskip=2, val_every=5,
    checkpoint_every=0, threads=1, decoder_size=16, depth=1, width=16, heads=2, mlp_dim=32,
    dropout=0.1,
)  # fmt: skip


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two tiny push-T episodes at 64 px, encoded with the tiny encoder."""
    path = tmp_path_factory.mktemp("data") / "pusht.h5"
    cfg = CollectConfig("worldplan/PushT-v0", episodes=2, steps=10, image_size=64, seed=1,
                        env_kwargs={"terminate_on_success": False})  # fmt: skip
    collect(cfg, path, progress=False)
    encode_dataset(path, TinyEncoder(), progress=False)
    return path


def _weights(bundle: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for name in WEIGHT_FILES:
        out.update({f"{name}/{k}": v for k, v in load_file(str(bundle / name)).items()})
    return out


def test_end_to_end_smoke_bundle_loads_and_plans(dataset: Path, tmp_path: Path) -> None:
    result = train(dataset, tmp_path / "bundle", TINY, progress=False)
    model = load_bundle(result.bundle, encoder=TinyEncoder())
    manifest = read_manifest(result.bundle)
    assert manifest["env_id"] == "worldplan/PushT-v0"
    assert (manifest["frameskip"], manifest["history"], manifest["action_dim"]) == (2, 2, 4)
    assert manifest["image_size"] == 64
    assert manifest["env_options"] == {}  # collection-only options stay out
    assert manifest["training_data"]["env_kwargs"] == {"terminate_on_success": False}
    assert manifest["training_data"]["episodes"] == 2
    assert manifest["training_data"]["env_steps"] == 20
    assert manifest["training_data"]["val_episodes"] == 1
    assert len(manifest["training_data"]["val_episode_names"]) == 1
    for key in ("val/visual_mse", "val/copy_last_mse", "val/probe_mse", "val/decoder_mse"):
        assert key in manifest["metrics"]
    assert model.state_labels[-2:] == ("block_angle_cos", "block_angle_sin")
    # the stats are those of the training split, in env units
    assert float(model.action_std.min()) > 0.0
    images = torch.zeros(1, 2, 64, 64, 3, dtype=torch.uint8)
    z = model.encode_images(images, torch.zeros(1, 2, 4))
    out = model.rollout(z, torch.zeros(3, 4, model.action_dim))
    assert out.visual.shape == (3, 4, 16, 8)
    assert model.probe(out).shape == (3, 4, 6)


def test_training_is_deterministic_given_the_seed(dataset: Path, tmp_path: Path) -> None:
    a = train(dataset, tmp_path / "a", TINY, progress=False)
    b = train(dataset, tmp_path / "b", TINY, progress=False)
    c = train(dataset, tmp_path / "c", replace(TINY, seed=1), progress=False)
    wa, wb, wc = _weights(a.bundle), _weights(b.bundle), _weights(c.bundle)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_resume_from_checkpoint_matches_an_uninterrupted_run(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = replace(TINY, steps=6, checkpoint_every=3, val_every=3)
    full = train(dataset, tmp_path / "full", cfg, progress=False)

    real_step = train_mod.train_step
    calls: list[int] = []

    def dies_at_step_5(*args: object, **kw: object) -> dict[str, float]:
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_step(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(train_mod, "train_step", dies_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        train(dataset, tmp_path / "cut", cfg, progress=False)
    monkeypatch.setattr(train_mod, "train_step", real_step)
    assert not (tmp_path / "cut").exists()
    assert train_mod.latest_checkpoint(tmp_path / "cut.ckpt") == tmp_path / "cut.ckpt/step_0000003"

    resumed = train(dataset, tmp_path / "cut", cfg, progress=False)
    assert resumed.resumed_from == 3
    wf, wr = _weights(full.bundle), _weights(resumed.bundle)
    assert wf.keys() == wr.keys()
    assert all(torch.equal(wf[k], wr[k]) for k in wf)
    assert resumed.metrics["val/visual_mse"] == full.metrics["val/visual_mse"]

    with pytest.raises(ValueError, match="other settings"):
        train(dataset, tmp_path / "cut", replace(cfg, lr=2e-3), progress=False)
    again = train(dataset, tmp_path / "cut", replace(cfg, threads=2), progress=False)
    assert again.resumed_from == 6  # finished: nothing left to train, the bundle is rewritten
    assert all(torch.equal(wf[k], v) for k, v in _weights(again.bundle).items())


def test_probe_and_decoder_losses_leave_the_predictor_alone(dataset: Path) -> None:
    data = load_training_data(dataset, pixel_size=16)
    cfg = replace(TINY, dropout=0.0)
    model: WorldModel = build_model(data, cfg, compute_stats(data.episodes, cfg.frameskip))
    batch = WindowDataset(data.episodes, cfg.history, cfg.frameskip).batch([0, 1, 2])
    grads = []
    for full in (True, False):
        model.zero_grad()
        if full:
            loss, metrics = train_mod.losses(model, batch, 1.0)
            assert {"probe_mse", "decoder_mse", "visual_mse"} <= metrics.keys()
        else:
            prop = model.normalise_proprio(batch["proprio"])
            loss, _ = model.predictor_loss(batch["visual"], prop, batch["actions"])
        loss.backward()  # type: ignore[no-untyped-call]
        grads.append([p.grad.clone() for p in model.predictor.parameters() if p.grad is not None])
    assert len(grads[0]) == len(grads[1]) > 0
    assert all(torch.equal(a, b) for a, b in zip(*grads, strict=True))
    model.zero_grad()
    probe, _ = model.probe_loss(batch["visual"], model.normalise_proprio(batch["proprio"]),
                                batch["state"])  # fmt: skip
    probe.backward()  # type: ignore[no-untyped-call]
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0 for p in model.state_probe.parameters()
    )
    assert all(p.grad is None for p in model.predictor.parameters())


def test_training_fits_the_training_windows(dataset: Path, tmp_path: Path) -> None:
    cfg = replace(TINY, steps=60, lr=3e-3, val_every=60)
    untrained = train_mod._setup(dataset, cfg, None)  # same init, split and stats as train()
    before = train_mod.evaluate(untrained.model, untrained.train_set, 64, 16)
    result = train(dataset, tmp_path / "b", cfg, progress=False)
    trained = load_bundle(result.bundle, load_encoder=False)
    after = train_mod.evaluate(trained, untrained.train_set, 64, 16)
    for key in ("visual_mse", "proprio_mse", "probe_mse", "decoder_mse"):
        assert after[key] < before[key], key
    assert before["copy_last_mse"] == after["copy_last_mse"]


def test_bad_training_settings_are_explained(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="history"):
        TrainConfig(history=0)
    with pytest.raises(ValueError, match="no training windows"):
        train(dataset, tmp_path / "x", replace(TINY, history=3, frameskip=5), progress=False)
    with pytest.raises(ValueError, match="no feature cache"):
        train(dataset, tmp_path / "x", TINY, feature_key="nope", progress=False)


def test_recipes_cover_the_shipped_defaults() -> None:
    assert set(recipes.RECIPES) == {"pusht", "maze-umaze", "maze-tworoom", "granular"}
    layouts = {r.env_kwargs.get("layout") for r in recipes.RECIPES.values()}
    assert {"umaze", "tworoom"} <= layouts
    full = recipes.RECIPES["pusht"]
    small = full.scaled(0.01)
    assert small.episodes == max(2, round(full.episodes * 0.01))
    assert small.train.steps == max(1, round(full.train.steps * 0.01))
    assert small.train.steps < full.train.steps
    assert small.train.frameskip == full.train.frameskip
    assert small.with_threads(2).train.threads == 2
    with pytest.raises(ValueError, match="unknown recipes"):
        recipes.select(["pong"])


def test_build_models_writes_bundles_and_a_report(tmp_path: Path) -> None:
    recipe = recipes.Recipe(
        name="tiny-maze", env_id="worldplan/Maze-v0", env_kwargs={"layout": "umaze"},
        episodes=2, steps=8, image_size=32, train=TINY,
    )  # fmt: skip
    report = recipes.build_models(tmp_path / "models", [recipe], TinyEncoder,
                                  work=tmp_path / "work", progress=False)  # fmt: skip
    entry = report["models"]["tiny-maze"]
    assert set(entry["seconds"]) == {"collect_s", "encode_s", "train_s"}
    saved = json.loads((tmp_path / "models" / recipes.BUILD_REPORT).read_text())
    assert saved["models"]["tiny-maze"]["recipe"]["episodes"] == 2
    model = load_bundle(tmp_path / "models" / "tiny-maze", encoder=TinyEncoder())
    assert model.env_id == "worldplan/Maze-v0"
    assert model.spec.env_options == {"layout": "umaze"}
    assert model.state_labels == ("agent_x", "agent_y", "agent_vx", "agent_vy")


def test_collect_and_train_commands(dataset: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "m.h5"
    args = ["collect", "--env", "maze", "--episodes", "1", "--steps", "3", "--image-size", "32"]
    res = runner.invoke(app, [*args, "--out", str(out), "--layout", "tworoom"])
    assert res.exit_code == 0, res.output
    assert "1 complete episodes" in res.output
    res = runner.invoke(app, ["train", "--data", str(dataset), "--env", "maze", "--out",
                              str(tmp_path / "b")])  # fmt: skip
    assert res.exit_code != 0
    assert "PushT-v0" in res.output
    res = runner.invoke(app, ["collect", "--env", "maze", "--episodes", "1", "--out", str(out),
                              "--policy", "greedy"])  # fmt: skip
    assert res.exit_code != 0
    assert "policy must be one of" in res.output
    small = ["train", "--data", str(dataset), "--env", "pusht", "--steps", "2", "--batch", "4",
             "--history", "2", "--frameskip", "2", "--depth", "1", "--width", "16", "--heads",
             "2", "--warmup", "1"]  # fmt: skip
    res = runner.invoke(app, [*small, "--rollout-steps", "9", "--out", str(tmp_path / "r")])
    assert res.exit_code != 0
    assert "rollout" in res.output
    res = runner.invoke(app, [*small, "--rollout-steps", "2", "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert "rollout_visual_mse" in res.output
    res = runner.invoke(app, [*small, "--out", str(tmp_path / "r2"), "--init", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert read_manifest(tmp_path / "r2")["training_data"]["init"]["bundle"] == "r"


def test_latent_of_a_training_window_is_valid(dataset: Path) -> None:
    data = load_training_data(dataset, pixel_size=None)
    assert all(e.pixels is None for e in data.episodes)
    feats = torch.from_numpy(data.episodes[0].features[None].astype("float32"))
    Latent(feats, torch.zeros(1, feats.shape[1], 4))


def test_loss_balance_uses_copy_last_baselines(dataset: Path) -> None:
    run = train_mod._setup(dataset, TINY, None)
    visual, proprio = run.baselines
    assert visual > 0
    assert proprio > 0
    assert run.proprio_weight(TINY) == pytest.approx(visual / proprio)
    assert run.proprio_weight(replace(TINY, proprio_weight=0.5)) == pytest.approx(
        0.5 * visual / proprio
    )


def test_a_one_step_rollout_loss_is_the_teacher_forced_last_frame(dataset: Path) -> None:
    data = load_training_data(dataset, pixel_size=None)
    cfg = replace(TINY, dropout=0.0)
    model: WorldModel = build_model(data, cfg, compute_stats(data.episodes, cfg.frameskip))
    model.eval()
    batch = WindowDataset(data.episodes, cfg.history, cfg.frameskip).batch([0, 1, 2])
    prop = model.normalise_proprio(batch["proprio"])
    a = model.normalise_actions(batch["actions"])
    with torch.no_grad():
        v_pred, p_pred = model.predictor(batch["visual"][:, :-1], prop[:, :-1], a)
    want_v = torch.nn.functional.mse_loss(v_pred[:, -1], batch["visual"][:, -1])
    want_p = torch.nn.functional.mse_loss(p_pred[:, -1], prop[:, -1])
    _, m = model.rollout_loss(batch["visual"], prop, batch["actions"])
    assert m["rollout_visual_mse"] == pytest.approx(float(want_v), rel=1e-5)
    assert m["rollout_proprio_mse"] == pytest.approx(float(want_p), rel=1e-5)
    # longer windows: the teacher-forced part only sees the first history + 1 frames
    long = WindowDataset(data.episodes, cfg.history + 2, cfg.frameskip).batch([0, 1, 2])
    _, tf_only = train_mod.losses(model, batch, 1.0)
    _, both = train_mod.losses(model, long, 1.0, rollout_steps=3)
    assert both["visual_mse"] == pytest.approx(tf_only["visual_mse"], rel=1e-5)
    assert both["rollout_visual_mse"] > 0
    with pytest.raises(ValueError, match="rollout_steps 3 needs 4"):
        train_mod.losses(model, batch, 1.0, rollout_steps=3)


def test_fine_tuning_with_a_rollout_loss_starts_from_the_bundle_and_lowers_it(
    dataset: Path, tmp_path: Path
) -> None:
    base = train(dataset, tmp_path / "base", replace(TINY, steps=20, val_every=20),
                 progress=False).bundle  # fmt: skip
    fine = replace(TINY, steps=40, lr=3e-3, val_every=40, checkpoint_every=40, rollout_steps=3,
                   dropout=0.0)  # fmt: skip
    run = train_mod._setup(dataset, fine, None)
    info = train_mod._init_from(run.model, base)
    assert info["bundle"] == "base"
    loaded = load_bundle(base, load_encoder=False).state_dict()
    assert all(torch.equal(v, run.model.state_dict()[k]) for k, v in loaded.items())
    before = train_mod.evaluate(run.model, run.train_set, 64, 16, rollout_steps=3)
    result = train(dataset, tmp_path / "fine", fine, init=base, progress=False)
    assert "val/rollout_visual_mse" in result.metrics
    assert read_manifest(result.bundle)["training_data"]["init"]["bundle"] == "base"
    tuned = load_bundle(result.bundle, load_encoder=False)
    after = train_mod.evaluate(tuned, run.train_set, 64, 16, rollout_steps=3)
    assert after["rollout_visual_mse"] < before["rollout_visual_mse"]
    # its checkpoints belong to a run from that bundle
    with pytest.raises(ValueError, match="started from"):
        train(dataset, tmp_path / "fine", fine, progress=False)
    wider = replace(TINY, width=32)
    with pytest.raises(ValueError, match="does not fit"):
        train(dataset, tmp_path / "w", wider, init=base, progress=False)
    with pytest.raises(ValueError, match="no training windows"):
        train(dataset, tmp_path / "x", replace(TINY, rollout_steps=5), progress=False)
    with pytest.raises(ValueError, match="rollout_weight"):
        TrainConfig(rollout_weight=-1.0)


def test_a_recipe_with_a_fine_tuning_stage(tmp_path: Path) -> None:
    fine = replace(TINY, steps=2, rollout_steps=2)
    recipe = recipes.Recipe(
        name="tiny-maze", env_id="worldplan/Maze-v0", env_kwargs={"layout": "umaze"},
        episodes=2, steps=8, image_size=32, train=TINY, finetune=fine,
    )  # fmt: skip
    report = recipes.build_models(tmp_path / "models", [recipe], TinyEncoder,
                                  work=tmp_path / "work", progress=False)  # fmt: skip
    entry = report["models"]["tiny-maze"]
    assert set(entry["seconds"]) == {"collect_s", "encode_s", "train_s", "finetune_s"}
    assert entry["recipe"]["finetune"]["rollout_steps"] == 2
    assert (tmp_path / "work" / "tiny-maze" / "base" / "bundle.json").is_file()
    manifest = read_manifest(tmp_path / "models" / "tiny-maze")
    assert manifest["training_data"]["init"]["bundle"] == "base"
    assert manifest["training_data"]["train_config"]["rollout_steps"] == 2
    small = recipe.scaled(0.5).with_threads(2).finetune
    assert small is not None
    assert (small.steps, small.threads, small.rollout_steps) == (1, 2, 2)
