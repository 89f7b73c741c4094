"""The block-causal predictor: mask, causality, shapes, config validation."""

from __future__ import annotations

import pytest
import torch

from world_model.predictor import Predictor, PredictorConfig, block_causal_mask

N, D, A, P = 4, 6, 3, 2


def make(history: int = 3, residual: bool = False, **kw: object) -> Predictor:
    torch.manual_seed(0)
    cfg = PredictorConfig(
        num_patches=N,
        embed_dim=D,
        action_dim=A,
        proprio_dim=P,
        history=history,
        depth=2,
        heads=2,
        width=8,
        mlp_dim=16,
        dropout=0.0,
        residual=residual,
        **kw,  # type: ignore[arg-type]
    )
    return Predictor(cfg).eval()


def inputs(b: int = 2, t: int = 3, seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    return (
        torch.randn(b, t, N, D, generator=gen),
        torch.randn(b, t, P, generator=gen),
        torch.randn(b, t, A, generator=gen),
    )


def test_mask_is_block_causal() -> None:
    m = block_causal_mask(3, 2)
    expected = torch.tensor(
        [
            [1, 1, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [1, 1, 1, 1, 0, 0],
            [1, 1, 1, 1, 0, 0],
            [1, 1, 1, 1, 1, 1],
            [1, 1, 1, 1, 1, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(m, expected)


def test_mask_is_cached_per_length() -> None:
    pred = make()
    m3 = pred.mask(3, torch.device("cpu"))
    assert pred.mask(3, torch.device("cpu")) is m3
    assert pred.mask(2, torch.device("cpu")).shape == (2 * N, 2 * N)


def test_output_shapes() -> None:
    pred = make()
    v, p = pred(*inputs(b=5, t=2))
    assert v.shape == (5, 2, N, D)
    assert p.shape == (5, 2, P)


@pytest.mark.parametrize("field", ["visual", "proprio", "actions"])
def test_future_frame_cannot_change_past_prediction(field: str) -> None:
    pred = make()
    vis, prop, act = inputs()
    v0, p0 = pred(vis, prop, act)
    changed = {"visual": vis.clone(), "proprio": prop.clone(), "actions": act.clone()}
    changed[field][:, 2] += 5.0  # perturb only the last frame's input
    v1, p1 = pred(changed["visual"], changed["proprio"], changed["actions"])
    assert torch.equal(v0[:, :2], v1[:, :2])
    assert torch.equal(p0[:, :2], p1[:, :2])
    assert not torch.allclose(v0[:, 2], v1[:, 2])


@pytest.mark.parametrize("field", ["visual", "proprio", "actions"])
def test_past_frame_changes_later_predictions(field: str) -> None:
    pred = make()
    vis, prop, act = inputs()
    v0, p0 = pred(vis, prop, act)
    changed = {"visual": vis.clone(), "proprio": prop.clone(), "actions": act.clone()}
    changed[field][:, 0] += 5.0
    v1, p1 = pred(changed["visual"], changed["proprio"], changed["actions"])
    for t in range(3):
        assert not torch.allclose(v0[:, t], v1[:, t])
        assert not torch.allclose(p0[:, t], p1[:, t])


def test_within_frame_attention_is_full() -> None:
    pred = make()
    vis, prop, act = inputs()
    v0, _ = pred(vis, prop, act)
    vis2 = vis.clone()
    vis2[:, 1, -1] += 5.0  # last patch of frame 1
    v1, _ = pred(vis2, prop, act)
    assert not torch.allclose(v0[:, 1, 0], v1[:, 1, 0])  # first patch of frame 1 sees it


def test_shorter_window_matches_prefix_of_full_window() -> None:
    # Causality + positions counted from the window start: a 2-frame window gives the
    # same predictions as the first two entries of a 3-frame window.
    pred = make()
    vis, prop, act = inputs()
    v_full, p_full = pred(vis, prop, act)
    v2, p2 = pred(vis[:, :2], prop[:, :2], act[:, :2])
    torch.testing.assert_close(v2, v_full[:, :2])
    torch.testing.assert_close(p2, p_full[:, :2])


def test_residual_predictor_starts_at_copy_last_frame() -> None:
    pred = make(residual=True)
    vis, prop, act = inputs()
    v, p = pred(vis, prop, act)
    assert torch.equal(v, vis)
    assert torch.equal(p, prop)


def test_without_proprio_and_without_projection() -> None:
    torch.manual_seed(0)
    cfg = PredictorConfig(N, D, A, 0, action_emb_dim=2, history=2, depth=1, heads=1, width=0)
    assert cfg.model_width == D + 2
    pred = Predictor(cfg)
    v, p = pred(torch.randn(3, 2, N, D), torch.zeros(3, 2, 0), torch.randn(3, 2, A))
    assert v.shape == (3, 2, N, D)
    assert p.shape == (3, 2, 0)


def test_gradients_reach_actions() -> None:
    pred = make()
    vis, prop, act = inputs()
    act.requires_grad_(True)
    v, _ = pred(vis, prop, act)
    v[:, -1].pow(2).sum().backward()
    assert act.grad is not None
    assert act.grad[:, -1].abs().sum() > 0


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"depth": 0}, "depth"),
        ({"heads": 3}, "heads"),
        ({"dropout": 1.0}, "dropout"),
        ({"history": -1}, "history"),
        ({"width": -4}, "width"),
        ({"proprio_emb_dim": 0}, "proprio_emb_dim"),
    ],
)
def test_config_validation(kw: dict[str, object], msg: str) -> None:
    base: dict[str, object] = {"num_patches": N, "embed_dim": D, "action_dim": A, "proprio_dim": P}
    base.update(width=8, heads=2)
    base.update(kw)
    with pytest.raises(ValueError, match=msg):
        PredictorConfig(**base)  # type: ignore[arg-type]


def test_bad_input_shapes_are_reported() -> None:
    pred = make(history=2)
    vis, prop, act = inputs(t=3)
    with pytest.raises(ValueError, match=r"1\.\.2 frames"):
        pred(vis, prop, act)
    vis, prop, act = inputs(t=2)
    with pytest.raises(ValueError, match="actions must be"):
        pred(vis, prop, act[..., :2])
    with pytest.raises(ValueError, match="visual must be"):
        pred(vis[..., :3], prop, act)


def test_merged_tokens_keep_causality_and_spatial_layout() -> None:
    torch.manual_seed(0)
    cfg = PredictorConfig(16, D, A, P, history=3, depth=2, heads=2, width=8, mlp_dim=16, merge=2)
    assert cfg.tokens_per_frame == 4
    pred = Predictor(cfg).eval()
    assert pred.mask(3, torch.device("cpu")).shape == (12, 12)
    gen = torch.Generator().manual_seed(1)
    vis = torch.randn(2, 3, 16, D, generator=gen)
    prop = torch.randn(2, 3, P, generator=gen)
    act = torch.randn(2, 3, A, generator=gen)
    # merge then unmerge is the identity on the 4x4 grid
    merged = pred._merge(vis, 2)
    assert merged.shape == (2, 3, 4, 4 * D)
    assert torch.equal(merged[0, 0, 0, :D], vis[0, 0, 0])  # patch (0, 0)
    assert torch.equal(merged[0, 0, 0, D : 2 * D], vis[0, 0, 1])  # patch (0, 1)
    assert torch.equal(merged[0, 0, 0, 2 * D : 3 * D], vis[0, 0, 4])  # patch (1, 0)
    v0, _ = pred(vis, prop, act)
    assert torch.equal(v0, vis)  # residual + zero init: exact copy, so unmerge inverts merge
    with torch.no_grad():
        for p in pred.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    v0, _ = pred(vis, prop, act)
    vis2 = vis.clone()
    vis2[:, 2] += 3.0
    v1, _ = pred(vis2, prop, act)
    assert torch.equal(v0[:, :2], v1[:, :2])
    assert not torch.allclose(v0[:, 2], v1[:, 2])


def test_merge_needs_divisible_square_grid() -> None:
    with pytest.raises(ValueError, match="merge=2"):
        PredictorConfig(12, D, A, P, width=8, heads=2, merge=2)
    with pytest.raises(ValueError, match="merge=2"):
        PredictorConfig(9, D, A, P, width=8, heads=2, merge=2)


@pytest.mark.parametrize("merge", [1, 2])
@pytest.mark.parametrize("frames", [1, 2, 3])
def test_last_only_matches_last_entry_of_full_forward(merge: int, frames: int) -> None:
    torch.manual_seed(0)
    cfg = PredictorConfig(16, D, A, P, history=3, depth=2, heads=2, width=8, mlp_dim=16,
                          merge=merge, dropout=0.0)  # fmt: skip
    pred = Predictor(cfg).eval()
    with torch.no_grad():
        for p in pred.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    gen = torch.Generator().manual_seed(2)
    vis = torch.randn(3, frames, 16, D, generator=gen)
    prop = torch.randn(3, frames, P, generator=gen)
    act = torch.randn(3, frames, A, generator=gen)
    v_full, p_full = pred(vis, prop, act)
    v_last, p_last = pred(vis, prop, act, last_only=True)
    assert v_last.shape == (3, 1, 16, D)
    torch.testing.assert_close(v_last, v_full[:, -1:], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(p_last, p_full[:, -1:], atol=1e-5, rtol=1e-5)
