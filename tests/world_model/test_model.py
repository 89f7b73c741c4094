"""WorldModel: encoding checks, rollout semantics, probe/decoder, training helpers."""

from __future__ import annotations

import pytest
import torch
from tiny_model import (
    ENV_ACTION_DIM,
    FRAMESKIP,
    IMAGE_SIZE,
    PROPRIO_DIM,
    STATE_LABELS,
    TinyEncoder,
    tiny_configs,
    tiny_inputs,
    tiny_model,
)

from world_model.model import NormStats, WorldModel, pack_actions, unpack_actions
from world_model.types import Latent, LatentModel

A = FRAMESKIP * ENV_ACTION_DIM


def test_satisfies_latent_model_protocol() -> None:
    model: LatentModel = tiny_model()
    assert model.action_dim == A
    assert model.action_mean.shape == (A,)
    assert model.action_std.shape == (A,)
    assert model.state_labels == STATE_LABELS
    assert model.frameskip == FRAMESKIP
    assert model.env_action_dim == ENV_ACTION_DIM


def test_encode_images_shapes_and_normalised_proprio() -> None:
    model = tiny_model()
    images, proprio = tiny_inputs(batch=2, frames=3)
    z = model.encode_images(images, proprio)
    assert z.visual.shape == (2, 3, 16, 8)
    expected = (proprio - model.proprio_mean) / model.proprio_std
    torch.testing.assert_close(z.proprio, expected)


@pytest.mark.parametrize(
    ("images", "msg"),
    [
        (torch.zeros(1, 2, IMAGE_SIZE, IMAGE_SIZE, 3), "dtype torch.float32"),
        (torch.zeros(1, 2, 3, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.uint8), "channels first"),
        (torch.zeros(1, 2, 64, 64, 3, dtype=torch.uint8), "64x64 px"),
        (torch.zeros(2, IMAGE_SIZE, IMAGE_SIZE, 3, dtype=torch.uint8), "got shape"),
        (torch.zeros(1, 2, IMAGE_SIZE, IMAGE_SIZE, 4, dtype=torch.uint8), "RGB"),
    ],
)
def test_encode_images_rejects_bad_frames(images: torch.Tensor, msg: str) -> None:
    model = tiny_model()
    with pytest.raises(ValueError, match=msg):
        model.encode_images(images, torch.zeros(1, 2, PROPRIO_DIM))


def test_encode_images_rejects_bad_proprio_and_missing_encoder() -> None:
    model = tiny_model()
    images, _ = tiny_inputs(batch=1, frames=2)
    with pytest.raises(ValueError, match="proprio must be"):
        model.encode_images(images, torch.zeros(1, 2, PROPRIO_DIM + 1))
    spec, pred, probe, dec = tiny_configs()
    bare = WorldModel(spec, pred, probe, dec)
    with pytest.raises(RuntimeError, match="no encoder"):
        bare.encode_images(images, torch.zeros(1, 2, PROPRIO_DIM))


def test_attach_encoder_checks_identity() -> None:
    spec, pred, probe, dec = tiny_configs()
    model = WorldModel(spec, pred, probe, dec)
    with pytest.raises(ValueError, match="sha256"):
        model.attach_encoder(TinyEncoder(seed=1))
    other = TinyEncoder()
    other.encoder_id = "another_encoder"
    with pytest.raises(ValueError, match="another_encoder"):
        model.attach_encoder(other)
    model.attach_encoder(TinyEncoder())
    assert model.spec.encoder_image_size == 16  # recorded for the bundle
    resized = TinyEncoder()
    resized.image_size = 32
    with pytest.raises(ValueError, match="image_size=16"):
        model.attach_encoder(resized)


def _z0(model: WorldModel, batch: int = 3, frames: int = 2) -> Latent:
    images, proprio = tiny_inputs(batch=batch, frames=frames, seed=3)
    return model.encode_images(images, proprio)


def test_rollout_shapes_and_probe_decode() -> None:
    model = tiny_model()
    z = model.rollout(_z0(model), torch.randn(3, 5, A))
    assert z.visual.shape == (3, 5, 16, 8)
    assert z.proprio.shape == (3, 5, PROPRIO_DIM)
    assert model.probe(z).shape == (3, 5, len(STATE_LABELS))
    frames = model.decode(z)
    assert frames.dtype == torch.uint8
    assert frames.shape == (3, 5, 16, 16, 3)


def test_rollout_batched_equals_per_sample() -> None:
    model = tiny_model()
    z0 = _z0(model, batch=4)
    actions = torch.randn(4, 6, A)
    batched = model.rollout(z0, actions)
    for i in range(4):
        single = model.rollout(
            Latent(z0.visual[i : i + 1], z0.proprio[i : i + 1]), actions[i : i + 1]
        )
        torch.testing.assert_close(single.visual[0], batched.visual[i], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(single.proprio[0], batched.proprio[i], atol=1e-5, rtol=1e-5)


def test_rollout_broadcasts_batch_one_start() -> None:
    model = tiny_model()
    z0 = _z0(model, batch=1)
    actions = torch.randn(5, 4, A)
    out = model.rollout(z0, actions)
    ref = model.rollout(
        Latent(z0.visual.expand(5, -1, -1, -1), z0.proprio.expand(5, -1, -1)), actions
    )
    torch.testing.assert_close(out.visual, ref.visual)


def test_rollout_first_step_is_predictor_output() -> None:
    model = tiny_model()
    z0 = _z0(model, batch=2, frames=2)
    actions = torch.randn(2, 3, A)
    past = torch.randn(2, 1, A)
    out = model.rollout(z0, actions, past_actions=past)
    win_a = model.normalise_actions(torch.cat([past, actions[:, :1]], dim=1))
    v, p = model.predictor(z0.visual, z0.proprio, win_a)
    torch.testing.assert_close(out.visual[:, 0], v[:, -1])
    torch.testing.assert_close(out.proprio[:, 0], p[:, -1])


def test_rollout_uses_only_last_history_frames() -> None:
    model = tiny_model(history=2)
    z_long = _z0(model, batch=2, frames=4)
    actions = torch.randn(2, 3, A)
    out_long = model.rollout(z_long, actions)
    out_short = model.rollout(z_long.frames(slice(2, 4)), actions)
    torch.testing.assert_close(out_long.visual, out_short.visual)
    # ... and an older frame inside the window does matter
    z_changed = Latent(z_long.visual.clone(), z_long.proprio.clone())
    z_changed.visual[:, 2] += 1.0
    assert not torch.allclose(model.rollout(z_changed, actions).visual, out_long.visual)


def test_rollout_future_actions_do_not_change_earlier_steps() -> None:
    model = tiny_model()
    z0 = _z0(model)
    actions = torch.randn(3, 5, A)
    out = model.rollout(z0, actions)
    changed = actions.clone()
    changed[:, 3:] += 3.0
    out2 = model.rollout(z0, changed)
    torch.testing.assert_close(out.visual[:, :3], out2.visual[:, :3])
    assert not torch.allclose(out.visual[:, 3:], out2.visual[:, 3:])


def test_gradients_flow_through_rollout_to_actions() -> None:
    model = tiny_model()
    z0 = _z0(model)
    actions = torch.randn(3, 4, A, requires_grad=True)
    z = model.rollout(z0, actions)
    cost = z.visual[:, -1].pow(2).mean() + model.probe(z)[:, -1].pow(2).mean()
    cost.backward()
    assert actions.grad is not None
    assert torch.isfinite(actions.grad).all()
    assert (actions.grad.abs().sum(dim=(0, 2)) > 0).all()  # every step gets gradient


def test_rollout_rejects_bad_actions() -> None:
    model = tiny_model()
    z0 = _z0(model)
    with pytest.raises(ValueError, match=rf"\(B, H >= 1, {A}\)"):
        model.rollout(z0, torch.randn(3, 4, A + 1))
    with pytest.raises(ValueError, match="batch"):
        model.rollout(z0, torch.randn(2, 4, A))


def test_probe_is_in_env_units() -> None:
    model = tiny_model()
    z = _z0(model)
    raw = model.state_probe(z.visual, z.proprio)
    torch.testing.assert_close(model.probe(z), raw * model.state_std + model.state_mean)


def test_pack_and_unpack_actions() -> None:
    env_actions = torch.arange(2 * 6 * 2, dtype=torch.float32).view(2, 6, 2)
    packed = pack_actions(env_actions, 3)
    assert packed.shape == (2, 2, 6)
    assert torch.equal(packed[0, 1], env_actions[0, 3:6].flatten())
    assert torch.equal(unpack_actions(packed, 3), env_actions)
    with pytest.raises(ValueError, match="frameskip"):
        pack_actions(env_actions[:, :5], 3)


def test_norm_stats_from_data_and_validation() -> None:
    actions = torch.randn(100, A) * 2 + 1
    actions[:, 0] = 0.5  # a constant channel
    stats = NormStats.from_data(actions, torch.randn(100, PROPRIO_DIM), torch.randn(100, 3))
    assert stats.action_std[0] == 0
    spec, pred, probe, dec = tiny_configs()
    model = WorldModel(spec, pred, probe, dec, stats=stats)
    assert model.action_std[0] > 0  # floored, so normalising never divides by zero
    assert torch.isfinite(model.normalise_actions(actions)).all()
    bad = NormStats.identity(A + 1, PROPRIO_DIM, 3)
    with pytest.raises(ValueError, match="action_mean must have shape"):
        model.set_stats(bad)
    with pytest.raises(ValueError, match="finite"):
        NormStats.from_data([[float("nan")]], [[0.0]], [[0.0]])


def test_config_mismatch_is_reported() -> None:
    spec, _, probe, dec = tiny_configs()
    _, pred2, _, _ = tiny_configs(history=2)
    with pytest.raises(ValueError, match="history"):
        WorldModel(spec, pred2, probe, dec)


def test_training_helpers_reduce_their_losses() -> None:
    model = tiny_model().train()
    images, proprio = tiny_inputs(batch=4, frames=4, seed=5)
    z = model.encode_images(images, proprio)
    actions = torch.randn(4, 3, A)
    state = torch.randn(4, 4, len(STATE_LABELS)) * model.state_std + model.state_mean
    colours = torch.tensor([[30, 200, 90], [250, 10, 10], [0, 0, 0], [128, 128, 255]])
    solid = colours[:, None, None, None, :].expand(4, 4, 32, 32, 3).to(torch.uint8)
    opt = torch.optim.Adam(
        [
            {"params": [*model.predictor.parameters(), *model.state_probe.parameters()]},
            {"params": model.decoder.parameters(), "lr": 2e-2},
        ],
        lr=3e-3,
    )
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for _ in range(40):
        opt.zero_grad()
        l1, m1 = model.predictor_loss(z.visual, z.proprio, actions)
        l2, m2 = model.probe_loss(z.visual, z.proprio, state)
        l3, m3 = model.decoder_loss(z.visual, solid)
        (l1 + l2 + l3).backward()
        opt.step()
        last = {**m1, **m2, **m3}
        first = first or last
    for key in ("visual_mse", "proprio_mse", "probe_mse", "decoder_mse"):
        assert last[key] < 0.8 * first[key], (key, first[key], last[key])


def test_decoder_loss_does_not_train_the_predictor() -> None:
    model = tiny_model()
    images, proprio = tiny_inputs(batch=1, frames=2)
    z = model.encode_images(images, proprio)
    visual = z.visual.clone().requires_grad_(True)
    loss, _ = model.decoder_loss(visual, images)
    loss.backward()
    assert visual.grad is None
    assert all(p.grad is None for p in model.predictor.parameters())


def test_device_follows_parameters() -> None:
    model = tiny_model()
    assert model.device == torch.device("cpu")
    model.to(torch.float32)
    assert model.action_mean.device == model.device


def test_fp16_latents_and_float64_actions_are_accepted() -> None:
    model = tiny_model()
    z0 = _z0(model, batch=2)
    actions = torch.randn(2, 3, A, dtype=torch.float64)
    past = torch.randn(2, 1, A, dtype=torch.float64)
    half = Latent(z0.visual.half(), z0.proprio.half())
    out = model.rollout(half, actions, past_actions=past)
    ref = model.rollout(
        Latent(half.visual.float(), half.proprio.float()), actions.float(), past.float()
    )
    torch.testing.assert_close(out.visual, ref.visual)
    assert out.visual.dtype == torch.float32
    assert model.probe(half).dtype == torch.float32
    assert model.decode(half).dtype == torch.uint8
