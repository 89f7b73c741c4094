"""Encoder registry: DINOv2 layout and loading, weight checks, input checks, offline encoder."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
import typer
from typer.testing import CliRunner

from world_model.encoder_cli import register_encoder_commands
from world_model.encoders import (
    OFFLINE_DEFAULT,
    PIXEL_BASELINE,
    EncoderInputError,
    WeightsError,
    fetch_encoder,
    list_encoders,
    load_encoder,
)
from world_model.encoders import autoencoder as ae
from world_model.encoders.compare import CASES, CompareConfig, compare, format_table
from world_model.encoders.dinov2 import (
    CONFIGS,
    OFFICIAL_URLS,
    Attention,
    DinoV2Encoder,
    DinoViT,
    ViTConfig,
    random_state_dict,
    state_dict_layout,
)
from world_model.encoders.offline import PyramidTokens, blur, gaussian_kernel
from world_model.encoders.proxy import auc, rank_quality, spearman
from world_model.encoders.weights import Manifest, read_checkpoint, save_safetensors, sha256_file

NAME = "dinov2_vits14"
TINY = ViTConfig(embed_dim=32, depth=2, num_heads=2, pos_grid=4)


def official_layout(dim: int, depth: int) -> dict[str, tuple[int, ...]]:
    """The key set of facebookresearch/dinov2's hub backbones, written out independently.

    518 px pretraining -> a 37 x 37 patch grid plus the class token in pos_embed; no
    register tokens; MLP ratio 4; every block has norm1, attn.qkv, attn.proj, ls1, norm2,
    mlp.fc1, mlp.fc2, ls2 with biases.
    """
    keys: dict[str, tuple[int, ...]] = {
        "cls_token": (1, 1, dim),
        "pos_embed": (1, 1370, dim),
        "mask_token": (1, dim),
        "patch_embed.proj.weight": (dim, 3, 14, 14),
        "patch_embed.proj.bias": (dim,),
        "norm.weight": (dim,),
        "norm.bias": (dim,),
    }
    per_block = {
        "norm1.weight": (dim,),
        "norm1.bias": (dim,),
        "attn.qkv.weight": (3 * dim, dim),
        "attn.qkv.bias": (3 * dim,),
        "attn.proj.weight": (dim, dim),
        "attn.proj.bias": (dim,),
        "ls1.gamma": (dim,),
        "norm2.weight": (dim,),
        "norm2.bias": (dim,),
        "mlp.fc1.weight": (4 * dim, dim),
        "mlp.fc1.bias": (4 * dim,),
        "mlp.fc2.weight": (dim, 4 * dim),
        "mlp.fc2.bias": (dim,),
        "ls2.gamma": (dim,),
    }
    for i in range(depth):
        keys |= {f"blocks.{i}.{k}": v for k, v in per_block.items()}
    return keys


@pytest.fixture(scope="module")
def vits14_state() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    layout = official_layout(384, 12)
    return {k: torch.randn(s, generator=gen) * 0.02 for k, s in layout.items()}


@pytest.fixture(scope="module")
def vits14_pth(tmp_path_factory: pytest.TempPathFactory, vits14_state: dict) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "dinov2_vits14_pretrain.pth"
    torch.save(vits14_state, path)
    return path


def frames(b: int = 2, size: int = 64, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, size, size, 3), dtype=torch.uint8, generator=gen)


# ------------------------------------------------------------------ layout


@pytest.mark.parametrize(("name", "dim"), [("dinov2_vits14", 384), ("dinov2_vitb14", 768)])
def test_layout_matches_official_key_set(name: str, dim: int) -> None:
    expected = official_layout(dim, 12)
    assert state_dict_layout(CONFIGS[name]) == expected
    with torch.device("meta"):
        model = DinoViT(CONFIGS[name])
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected


def test_attention_matches_explicit_multi_head_formula() -> None:
    torch.manual_seed(0)
    attn = Attention(dim=12, num_heads=3)
    x = torch.randn(2, 5, 12)
    b, n, c = x.shape
    # The reference's reshape: (B, N, 3, heads, C / heads), then q, k, v per head.
    qkv = attn.qkv(x).reshape(b, n, 3, 3, c // 3).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    weights = (q @ k.transpose(-2, -1) / (c // 3) ** 0.5).softmax(-1)
    expected = attn.proj((weights @ v).transpose(1, 2).reshape(b, n, c))
    torch.testing.assert_close(attn(x), expected)


def test_tiny_encoder_token_count_follows_image_size() -> None:
    state = random_state_dict(TINY)
    for size, n in [(14, 1), (56, 16), (112, 64), (196, 196), (224, 256)]:
        enc = DinoV2Encoder(
            "tiny", TINY, state_dict=state, weights_sha256="", provenance="test", image_size=size
        )
        out = enc(frames(3, 50))
        assert out.shape == (3, n, 32) == (3, enc.num_patches, enc.embed_dim)
        assert torch.isfinite(out).all()
    with pytest.raises(ValueError, match="multiple of the patch size"):
        DinoV2Encoder(
            "tiny", TINY, state_dict=state, weights_sha256="", provenance="t", image_size=100
        )


def test_pos_embed_at_native_grid_is_untouched_and_interpolation_is_smooth() -> None:
    model = DinoViT(TINY)
    assert model.interpolated_pos_embed(4, 4) is model.pos_embed
    with torch.no_grad():  # a linear ramp over the grid stays a monotone ramp after resizing
        ramp = torch.arange(4.0).repeat(4).view(1, 16, 1).expand(1, 16, 32)
        model.pos_embed[:, 1:] = ramp
    up = model.interpolated_pos_embed(8, 8)[0, 1:, 0].view(8, 8)
    assert up.shape == (8, 8)
    assert (up[:, 1:] >= up[:, :-1] - 1e-5).all()
    torch.testing.assert_close(up[0], up[5])


# ------------------------------------------------------------------ official checkpoint paths


def test_vits14_pth_converts_once_and_loads_from_cache(vits14_pth: Path, tmp_path: Path) -> None:
    enc = load_encoder(NAME, weights=vits14_pth, cache_dir=tmp_path, image_size=56)
    out = enc(frames(2, 96))
    assert out.shape == (2, 16, 384)
    manifest = json.loads((tmp_path / f"{NAME}.json").read_text())
    assert manifest["source_sha256"] == sha256_file(vits14_pth)
    assert manifest["safetensors_sha256"] == sha256_file(tmp_path / f"{NAME}.safetensors")
    assert enc.weights_sha256 == manifest["safetensors_sha256"]
    assert not any(p.requires_grad for p in enc.parameters())
    assert not enc.train().training
    again = load_encoder(NAME, cache_dir=tmp_path, image_size=56)
    torch.testing.assert_close(again(frames(2, 96)), out)


def test_safetensors_needs_a_hash_and_a_matching_one(vits14_state: dict, tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    sha = save_safetensors(path, vits14_state)
    with pytest.raises(WeightsError, match="no manifest"):
        load_encoder(NAME, weights=path)
    enc = load_encoder(NAME, weights=path, sha256=sha, image_size=56)
    assert enc(frames(1)).shape == (1, 16, 384)
    with pytest.raises(WeightsError, match="does not match the expected"):
        load_encoder(NAME, weights=path, sha256="0" * 64)


def test_corrupted_cached_file_is_refused(vits14_state: dict, tmp_path: Path) -> None:
    path = tmp_path / f"{NAME}.safetensors"
    save_safetensors(path, vits14_state, Manifest(name=NAME, safetensors_sha256=""))
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="corrupted or was replaced"):
        load_encoder(NAME, cache_dir=tmp_path)


def test_missing_cache_says_how_to_fetch(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="worldplan encoder fetch dinov2_vits14"):
        load_encoder(NAME, cache_dir=tmp_path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("missing", r"missing keys blocks\.11\.ls2\.gamma"),
        ("unexpected", r"unexpected keys head\.weight"),
        ("shape", r"pos_embed has shape \(1, 257, 384\), expected \(1, 1370, 384\)"),
        ("vitb", r"does not match the expected layout"),
    ],
)
def test_mismatched_checkpoints_are_refused_before_writing(
    vits14_state: dict, tmp_path: Path, edit: str, message: str
) -> None:
    state = dict(vits14_state)
    if edit == "missing":
        del state["blocks.11.ls2.gamma"]
    elif edit == "unexpected":
        state["head.weight"] = torch.zeros(10, 384)
    elif edit == "shape":
        state["pos_embed"] = torch.zeros(1, 257, 384)
    pth = tmp_path / "bad.pth"
    torch.save(state, pth)
    name = "dinov2_vitb14" if edit == "vitb" else NAME
    with pytest.raises(WeightsError, match=message):
        load_encoder(name, weights=pth, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / f"{name}.safetensors").exists()
    # The same mismatch arriving as safetensors is refused too.
    st = tmp_path / "bad.safetensors"
    sha = save_safetensors(st, state)
    with pytest.raises(WeightsError, match=message):
        load_encoder(name, weights=st, sha256=sha)


class _Payload:
    def __reduce__(self) -> tuple:
        return (print, ("code ran",))


def test_pth_with_code_is_refused_by_the_restricted_loader(tmp_path: Path) -> None:
    pth = tmp_path / "evil.pth"
    torch.save({"cls_token": torch.zeros(1), "x": _Payload()}, pth)
    with pytest.raises(WeightsError, match="weights_only=True"):
        read_checkpoint(pth)
    torch.save([torch.zeros(1)], pth)
    with pytest.raises(WeightsError, match="state dict of named tensors"):
        read_checkpoint(pth)


def test_fetch_downloads_verifies_and_converts(vits14_pth: Path, tmp_path: Path) -> None:
    body = vits14_pth.read_bytes()
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, content=body, headers={"content-length": str(len(body))})

    client = httpx.Client(transport=httpx.MockTransport(handler))
    sha = sha256_file(vits14_pth)
    with pytest.raises(WeightsError, match="does not match the expected"):
        fetch_encoder(NAME, tmp_path, sha256="f" * 64, client=client, progress=False)
    assert list(tmp_path.iterdir()) == []  # nothing half-written is left behind
    out = fetch_encoder(NAME, tmp_path, sha256=sha, client=client, progress=False)
    assert seen[-1] == OFFICIAL_URLS[NAME]
    manifest = Manifest.read(Manifest.path_for(out))
    assert (manifest.source_url, manifest.source_sha256) == (OFFICIAL_URLS[NAME], sha)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{NAME}.json", f"{NAME}.safetensors"]
    assert load_encoder(NAME, cache_dir=tmp_path, image_size=28)(frames(1)).shape == (1, 4, 384)


def test_fetch_reports_http_errors(tmp_path: Path) -> None:
    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(404)))
    with pytest.raises(WeightsError, match="HTTP 404"):
        fetch_encoder(NAME, tmp_path, client=client, progress=False)


# ------------------------------------------------------------------ image input


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (torch.rand(2, 32, 32, 3), "uint8"),
        (torch.zeros(2, 3, 32, 32, dtype=torch.uint8), "channels-first"),
        (torch.zeros(2, 32, 32, 4, dtype=torch.uint8), "3 RGB channels"),
        (torch.zeros(32, 32, 3, dtype=torch.uint8), r"\(B, H, W, 3\)"),
        ([[1, 2, 3]], "uint8 tensor"),
    ],
)
def test_bad_images_get_clear_errors(images: object, message: str) -> None:
    enc = DinoV2Encoder(
        "tiny",
        TINY,
        state_dict=random_state_dict(TINY),
        weights_sha256="",
        provenance="test",
        image_size=28,
    )
    with pytest.raises(EncoderInputError, match=message):
        enc(images)  # type: ignore[arg-type]


def test_numpy_frames_and_non_square_frames_are_accepted() -> None:
    enc = DinoV2Encoder(
        "tiny",
        TINY,
        state_dict=random_state_dict(TINY),
        weights_sha256="",
        provenance="test",
        image_size=28,
    )
    square = frames(2, 40)
    wide = F.pad(square.permute(0, 3, 1, 2), (6, 6)).permute(0, 2, 3, 1).contiguous()
    torch.testing.assert_close(enc(square.numpy()), enc(square))
    torch.testing.assert_close(enc(wide), enc(square))  # centre crop removes the side bands


def test_registry_lists_names_and_rejects_unknown() -> None:
    names = [s.name for s in list_encoders()]
    assert {"dinov2_vits14", "dinov2_vitb14"} <= set(names)
    assert not any("dinov2" in s.name for s in list_encoders() if s.family == "offline")
    with pytest.raises(KeyError, match="unknown encoder"):
        load_encoder("dinov3_vits16")
    assert np.all([s.default_image_size > 0 for s in list_encoders()])


# ------------------------------------------------------------------ command line


def test_cli_lists_and_converts_a_local_checkpoint(vits14_pth: Path, tmp_path: Path) -> None:
    app = typer.Typer()
    register_encoder_commands(app)
    runner = CliRunner()
    listed = runner.invoke(app, ["encoder", "list"])
    assert listed.exit_code == 0
    assert "dinov2_vitb14" in listed.output
    args = ["encoder", "fetch", NAME, "--cache-dir", str(tmp_path), "--from", str(vits14_pth)]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    assert (tmp_path / f"{NAME}.safetensors").is_file()
    wrong = runner.invoke(app, [*args, "--sha256", "0" * 64])
    assert wrong.exit_code != 0
    assert "does not match" in wrong.output


# ------------------------------------------------------------------ offline encoder and proxy


def test_offline_default_is_honest_and_follows_the_protocol() -> None:
    enc = load_encoder(OFFLINE_DEFAULT)
    assert enc.encoder_id == OFFLINE_DEFAULT
    assert "dinov2" not in enc.encoder_id.lower()
    assert "dinov2" not in enc.provenance.lower()
    assert "training-free" in enc.provenance
    assert enc.weights_sha256 == ""
    assert (enc.image_size, enc.num_patches, enc.embed_dim) == (64, 64, 84)
    out = enc(frames(3, 224))
    assert out.shape == (3, enc.num_patches, enc.embed_dim)
    assert out.dtype == torch.float32
    torch.testing.assert_close(enc(frames(3, 224)), out)  # deterministic
    with pytest.raises(WeightsError, match="no weights"):
        load_encoder(OFFLINE_DEFAULT, weights="x.safetensors")
    with pytest.raises(ValueError, match="image_size 64"):
        load_encoder(OFFLINE_DEFAULT, image_size=112)
    with pytest.raises(EncoderInputError, match="uint8"):
        enc(torch.zeros(1, 64, 64, 3))


def _square_at(offset: int, size: int = 64, side: int = 6) -> torch.Tensor:
    img = torch.full((1, size, size, 3), 255, dtype=torch.uint8)
    top = size // 2 - side // 2
    img[0, top : top + side, 8 + offset : 8 + offset + side] = torch.tensor([40, 80, 200])
    return img


def test_pyramid_distance_keeps_growing_where_pixel_distance_saturates() -> None:
    pixels, pyramid = load_encoder(PIXEL_BASELINE), load_encoder(OFFLINE_DEFAULT)
    offsets = range(0, 25, 2)
    dist = {}
    for name, enc in (("pixels", pixels), ("pyramid", pyramid)):
        z0 = enc(_square_at(0))
        dist[name] = [float(((enc(_square_at(o)) - z0) ** 2).mean()) for o in offsets]
    pix, pyr = np.array(dist["pixels"]), np.array(dist["pyramid"])
    # Once the 6 px square no longer overlaps its start, the pixel distance is flat...
    assert np.allclose(pix[4:], pix[4], rtol=1e-4)
    # ...while the pyramid's keeps increasing with the displacement.
    assert (np.diff(pyr) > 0).all()


def test_blur_preserves_constants_and_mass() -> None:
    k = gaussian_kernel(2.0)
    assert torch.isclose(k.sum(), torch.tensor(1.0))
    const = torch.full((1, 3, 16, 16), 0.3)
    torch.testing.assert_close(blur(const, 3.0), const)
    spike = torch.zeros(1, 1, 33, 33)
    spike[0, 0, 16, 16] = 1.0
    assert torch.isclose(blur(spike, 2.0).sum(), torch.tensor(1.0), atol=1e-5)
    with pytest.raises(ValueError, match="same length"):
        PyramidTokens(sigmas=(1.0,), cells=(2, 2))


def test_rank_statistics() -> None:
    x = np.arange(10.0)
    assert spearman(x, x**3) == pytest.approx(1.0)
    assert spearman(x, -x) == pytest.approx(-1.0)
    assert spearman(x, np.zeros(10)) == 0.0
    assert auc(np.array([0.0, 1.0]), np.array([2.0, 3.0])) == 1.0
    assert auc(np.array([1.0, 1.0]), np.array([1.0])) == 0.5


def test_rank_quality_on_pusht_separates_pixels_from_a_blind_encoder() -> None:
    def blind(images: torch.Tensor) -> torch.Tensor:
        return torch.zeros(images.shape[0], 4, 8)

    seeing = rank_quality(load_encoder(PIXEL_BASELINE), "worldplan/PushT-v0", n=60, seed=3)
    assert seeing.n == 60
    assert seeing.spearman > 0.5
    assert seeing.auc > 0.8
    flat = rank_quality(blind, "worldplan/PushT-v0", n=60, seed=3)
    assert (flat.spearman, flat.auc) == (0.0, 0.5)


def test_compare_scores_every_case_and_tabulates() -> None:
    encoders = {"pixels": load_encoder(PIXEL_BASELINE), "pyramid": load_encoder(OFFLINE_DEFAULT)}
    rows = compare(encoders, CompareConfig(n=24, batch=4, repeats=1))
    assert [r["encoder"] for r in rows] == ["pixels", "pyramid"]
    for row in rows:
        for key, *_ in CASES:
            assert -1.0 <= row[key]["spearman"] <= 1.0
            assert 0.0 <= row[key]["auc"] <= 1.0
        assert row["images_per_s"] > 0
    table = format_table(rows)
    assert table.count("\n") == 3
    assert "| pyramid | 64 x 84 |" in table


def test_autoencoder_candidate_collects_frames_and_learns() -> None:
    frames_ = ae.collect_frames(per_source=6, seed=1)
    assert frames_.shape == (24, 64, 64, 3)
    assert frames_.dtype == np.uint8
    x = torch.from_numpy(frames_).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    torch.manual_seed(0)
    untrained = ae.ConvAutoencoder()
    model = ae.train_autoencoder(frames_, steps=8, seed=0, batch=4, lr=3e-3)
    with torch.no_grad():
        before = float(F.mse_loss(untrained(x), x))
        after = float(F.mse_loss(model(x), x))
    assert after < 0.85 * before  # eight small steps already cut the error
    enc = ae.AutoencoderTokens(model, "test")
    assert enc(frames_[:3]).shape == (3, 64, 64)
    assert not any(p.requires_grad for p in enc.parameters())
