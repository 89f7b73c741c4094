"""Model bundles: round trip, validation errors, atomic writes, golden outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from make_golden import BUNDLE, EXPECTED, golden_outputs
from safetensors.torch import load_file, save_file
from tiny_model import A, TinyEncoder, tiny_inputs, tiny_model

from world_model.bundle import (
    MANIFEST,
    SCHEMA_VERSION,
    BundleError,
    _sha256,
    load_bundle,
    read_manifest,
    save_bundle,
)
from world_model.model import WorldModel


def _perturbed_model() -> WorldModel:
    model = tiny_model(seed=3)
    with torch.no_grad():  # move off the zero init so every tensor matters
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


@pytest.fixture
def saved(tmp_path: Path) -> tuple[WorldModel, Path]:
    model = _perturbed_model()
    path = save_bundle(model, tmp_path / "b", {"val_mse": 0.25}, {"episodes": 3, "env_steps": 90})
    return model, path


def _outputs(model: WorldModel) -> dict[str, torch.Tensor]:
    images, proprio = tiny_inputs(batch=2, frames=2, seed=4)
    actions = torch.randn(2, 3, A, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        z0 = model.encode_images(images, proprio)
        z = model.rollout(z0, actions)
        return {"v": z.visual, "p": z.proprio, "s": model.probe(z), "img": model.decode(z)}


def test_round_trip_is_bit_exact(saved: tuple[WorldModel, Path]) -> None:
    model, path = saved
    loaded = load_bundle(path, encoder=TinyEncoder())
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    before, after = _outputs(model), _outputs(loaded)
    for key in before:
        assert torch.equal(before[key], after[key]), key
    assert loaded.spec == model.spec
    assert not loaded.training


def test_manifest_contents(saved: tuple[WorldModel, Path]) -> None:
    model, path = saved
    m = read_manifest(path)
    assert m["schema_version"] == SCHEMA_VERSION
    assert m["env_id"] == model.env_id
    assert m["encoder"]["id"] == "tiny_test_encoder"
    assert m["encoder"]["sha256"] == TinyEncoder().weights_sha256
    assert m["encoder"]["provenance"]
    assert m["action_dim"] == A
    assert m["frameskip"] == model.frameskip
    assert m["history"] == model.history
    assert m["state_labels"] == list(model.state_labels)
    assert m["metrics"] == {"val_mse": 0.25}
    assert m["training_data"] == {"episodes": 3, "env_steps": 90}
    assert len(m["normalisation"]["action_std"]) == A
    assert sorted(p.name for p in path.iterdir()) == [
        MANIFEST,
        "decoder.safetensors",
        "predictor.safetensors",
        "probe.safetensors",
    ]


def test_save_refuses_to_overwrite_and_leaves_no_temp(saved: tuple[WorldModel, Path]) -> None:
    model, path = saved
    with pytest.raises(FileExistsError, match="overwrite"):
        save_bundle(model, path)
    save_bundle(model, path, {"val_mse": 0.1}, overwrite=True)
    assert read_manifest(path)["metrics"] == {"val_mse": 0.1}
    assert sorted(p.name for p in path.parent.iterdir()) == ["b"]


def test_failed_save_leaves_nothing(tmp_path: Path) -> None:
    model = tiny_model()
    with pytest.raises(ValueError, match="JSON"):
        save_bundle(model, tmp_path / "b", {"bad": float("nan")})
    assert list(tmp_path.iterdir()) == []


def test_load_rejects_other_env(saved: tuple[WorldModel, Path]) -> None:
    _, path = saved
    with pytest.raises(
        BundleError, match=r"is for env 'worldplan/PushT-v0', not 'worldplan/Maze-v0'"
    ):
        load_bundle(path, encoder=TinyEncoder(), env_id="worldplan/Maze-v0")
    assert load_bundle(path, encoder=TinyEncoder(), env_id="worldplan/PushT-v0").env_id


def test_load_rejects_wrong_encoder(saved: tuple[WorldModel, Path]) -> None:
    _, path = saved
    with pytest.raises(BundleError, match="sha256"):
        load_bundle(path, encoder=TinyEncoder(seed=1))
    other = TinyEncoder()
    other.encoder_id = "dinov2_vits14"
    with pytest.raises(BundleError, match="trained with encoder 'tiny_test_encoder'"):
        load_bundle(path, encoder=other)


def test_load_without_encoder_for_latent_use(saved: tuple[WorldModel, Path]) -> None:
    model, path = saved
    loaded = load_bundle(path, load_encoder=False)
    assert loaded.encoder is None
    z0 = model.encode_images(*tiny_inputs(batch=1, frames=1))
    actions = torch.randn(1, 2, A)
    torch.testing.assert_close(
        loaded.rollout(z0, actions).visual, model.rollout(z0, actions).visual
    )


def _edit_manifest(path: Path, **changes: object) -> None:
    m = json.loads((path / MANIFEST).read_text())
    m.update(changes)
    (path / MANIFEST).write_text(json.dumps(m))


def test_load_rejects_unknown_schema(saved: tuple[WorldModel, Path]) -> None:
    _, path = saved
    _edit_manifest(path, schema_version=99)
    with pytest.raises(BundleError, match="schema_version 99"):
        load_bundle(path, encoder=TinyEncoder())


def test_load_rejects_missing_file_and_folder(saved: tuple[WorldModel, Path]) -> None:
    _, path = saved
    (path / "probe.safetensors").unlink()
    with pytest.raises(BundleError, match=r"missing probe\.safetensors"):
        load_bundle(path, encoder=TinyEncoder())
    with pytest.raises(BundleError, match="not a folder"):
        load_bundle(path / "nope")
    (path / MANIFEST).unlink()
    with pytest.raises(BundleError, match=r"has no bundle\.json"):
        load_bundle(path)


def test_load_rejects_modified_weights(saved: tuple[WorldModel, Path]) -> None:
    _, path = saved
    file = path / "predictor.safetensors"
    data = bytearray(file.read_bytes())
    data[-1] ^= 0xFF
    file.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="does not match the sha256"):
        load_bundle(path, encoder=TinyEncoder())


def test_load_rejects_wrong_tensor_shapes(saved: tuple[WorldModel, Path]) -> None:
    _, path = saved
    file = path / "predictor.safetensors"
    tensors = load_file(str(file))
    tensors["pos_emb"] = torch.zeros(1, 5, 16)
    save_file(tensors, str(file))
    m = json.loads((path / MANIFEST).read_text())
    m["files"]["predictor.safetensors"] = _sha256(file)  # a consistent but wrong bundle
    (path / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(BundleError, match=r"tensor pos_emb is \(1, 5, 16\).*needs \(1, 48, 16\)"):
        load_bundle(path, encoder=TinyEncoder())


def test_load_rejects_inconsistent_configs(saved: tuple[WorldModel, Path]) -> None:
    _, path = saved
    m = json.loads((path / MANIFEST).read_text())
    m["predictor"]["history"] = 2
    (path / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(BundleError, match="history"):
        load_bundle(path, encoder=TinyEncoder())
    m["predictor"]["history"] = 3
    m["predictor"]["typo_field"] = 1
    (path / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(BundleError, match="unknown keys"):
        load_bundle(path, encoder=TinyEncoder())


def test_load_rejects_non_json(saved: tuple[WorldModel, Path]) -> None:
    _, path = saved
    (path / MANIFEST).write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(path)


def test_golden_bundle_outputs() -> None:
    model = load_bundle(BUNDLE, encoder=TinyEncoder(), env_id="worldplan/PushT-v0")
    expected = load_file(str(EXPECTED))
    inputs = {k: expected[k] for k in ("images", "proprio", "actions")}
    got = golden_outputs(model, inputs)
    for key, value in got.items():
        want = expected[key]
        assert value.shape == want.shape, key
        if value.dtype == torch.uint8:  # rounding may flip by one level across CPUs
            assert (value.int() - want.int()).abs().max() <= 1, key
        else:
            torch.testing.assert_close(value, want, atol=1e-5, rtol=1e-5, msg=key)


def test_loaded_model_is_frozen_but_differentiable_in_actions(
    saved: tuple[WorldModel, Path],
) -> None:
    _, path = saved
    model = load_bundle(path, encoder=TinyEncoder())
    assert not any(p.requires_grad for p in model.parameters())
    z0 = model.encode_images(*tiny_inputs(batch=2, frames=1))
    actions = torch.randn(2, 3, A, requires_grad=True)
    model.rollout(z0, actions).visual.square().mean().backward()
    assert actions.grad is not None
    assert actions.grad.abs().sum() > 0
