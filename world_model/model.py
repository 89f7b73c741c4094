"""The world model the planner sees: encoder + predictor + state probe + decoder.

:class:`WorldModel` satisfies :class:`world_model.types.LatentModel`. It owns the
normalisation statistics (as buffers, so they travel with the weights and the
device) and turns env-unit actions, raw proprio and uint8 frames into the
normalised quantities the networks use.

Shapes: B batch, T frames, N patch tokens, D feature dim, P proprio dim,
H planning horizon, A planning-action dim (``env_action_dim * frameskip``),
S probed state dim.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from numpy.typing import ArrayLike
from torch import Tensor, nn

from world_model.heads import Decoder, DecoderConfig, ProbeConfig, StateProbe
from world_model.predictor import Predictor, PredictorConfig
from world_model.types import Encoder, Latent

#: Standard deviations below this are raised to it, so a constant channel normalises to 0.
STD_FLOOR = 1e-6


@dataclass(frozen=True)
class ModelSpec:
    """What a model is for: its env, its encoder and its time structure."""

    #: Registered env id, e.g. ``"worldplan/PushT-v0"``.
    env_id: str
    #: Env steps per planning step; a planning action is ``frameskip`` env actions.
    frameskip: int
    #: Dim of one env action.
    env_action_dim: int
    #: Frames of context the predictor uses.
    history: int
    #: Side (px) of the frames the model was trained on (the env's render size).
    image_size: int
    #: Names of the probed state entries.
    state_labels: tuple[str, ...]
    #: Registry id of the encoder.
    encoder_id: str
    #: sha256 of the encoder's weights ("" for a weight-free encoder).
    encoder_sha256: str = ""
    #: How the encoder's weights were made.
    encoder_provenance: str = ""
    #: Extra env options the data was collected with (e.g. the maze layout).
    env_options: dict[str, str] = field(default_factory=dict)
    #: Side (px) the encoder resized frames to (0: the registry's default for the encoder).
    encoder_image_size: int = 0

    def __post_init__(self) -> None:
        for name in ("frameskip", "env_action_dim", "history", "image_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ModelSpec.{name} must be a positive int, got {value!r}")
        if not self.env_id or not self.encoder_id:
            raise ValueError("ModelSpec needs a non-empty env_id and encoder_id")
        if not self.state_labels:
            raise ValueError("ModelSpec.state_labels must name at least one state entry")

    @property
    def action_dim(self) -> int:
        """Planning-action dim A."""
        return self.env_action_dim * self.frameskip


@dataclass(frozen=True)
class NormStats:
    """Normalisation statistics, env units; std is floored at :data:`STD_FLOOR`."""

    action_mean: Tensor  # (A,)
    action_std: Tensor  # (A,)
    proprio_mean: Tensor  # (P,)
    proprio_std: Tensor  # (P,)
    state_mean: Tensor  # (S,)
    state_std: Tensor  # (S,)

    @classmethod
    def from_data(cls, actions: ArrayLike, proprio: ArrayLike, state: ArrayLike) -> NormStats:
        """Statistics of training data: actions (..., A), proprio (..., P), state (..., S)."""
        out: dict[str, Tensor] = {}
        for name, data in (("action", actions), ("proprio", proprio), ("state", state)):
            arr = np.asarray(data, dtype=np.float64)
            arr = arr.reshape(-1, arr.shape[-1])
            if arr.shape[0] == 0 or not np.all(np.isfinite(arr)):
                raise ValueError(f"{name} statistics need finite data, got shape {arr.shape}")
            out[f"{name}_mean"] = torch.tensor(arr.mean(0), dtype=torch.float32)
            out[f"{name}_std"] = torch.tensor(arr.std(0), dtype=torch.float32)
        return cls(**out)

    @classmethod
    def identity(cls, action_dim: int, proprio_dim: int, state_dim: int) -> NormStats:
        """Mean 0, std 1 everywhere (for tests and untrained models)."""
        z, o = torch.zeros, torch.ones
        return cls(
            z(action_dim), o(action_dim), z(proprio_dim), o(proprio_dim), z(state_dim), o(state_dim)
        )

    def as_dict(self) -> dict[str, Tensor]:
        """The six statistics by name."""
        return {
            "action_mean": self.action_mean,
            "action_std": self.action_std,
            "proprio_mean": self.proprio_mean,
            "proprio_std": self.proprio_std,
            "state_mean": self.state_mean,
            "state_std": self.state_std,
        }


def default_configs(
    spec: ModelSpec,
    num_patches: int,
    embed_dim: int,
    proprio_dim: int,
    **predictor: Any,
) -> tuple[PredictorConfig, ProbeConfig, DecoderConfig]:
    """The CPU-sized configs for an encoder with ``num_patches`` x ``embed_dim`` tokens.

    Args:
        spec: The model spec (action dims, history, state labels).
        num_patches: Encoder tokens per frame N.
        embed_dim: Encoder feature dim D.
        proprio_dim: Proprio dim P.
        **predictor: Overrides of :class:`PredictorConfig` fields (depth, width, merge...).

    Returns:
        Predictor, probe and decoder configs that agree with each other and with ``spec``.
        Unless overridden, ``merge`` is 2 for an even square grid of 8 x 8 tokens or more
        (the CPU-speed default, see :mod:`world_model.predictor`), else 1.
    """
    grid = math.isqrt(num_patches)
    square_even = grid * grid == num_patches and grid % 2 == 0
    predictor.setdefault("merge", 2 if square_even and grid >= 8 else 1)
    pred = PredictorConfig(
        num_patches=num_patches,
        embed_dim=embed_dim,
        action_dim=spec.action_dim,
        proprio_dim=proprio_dim,
        history=spec.history,
        **predictor,
    )
    probe = ProbeConfig(num_patches, embed_dim, proprio_dim, len(spec.state_labels))
    dec = DecoderConfig(num_patches, embed_dim)
    return pred, probe, dec


def pack_actions(env_actions: Tensor, frameskip: int) -> Tensor:
    """Concatenate ``frameskip`` consecutive env actions into planning actions.

    Args:
        env_actions: (B, T * frameskip, env_A).
        frameskip: Env steps per planning step.

    Returns:
        (B, T, env_A * frameskip); row t is env actions ``t*fs .. t*fs+fs-1`` in order.
    """
    b, steps, a = env_actions.shape
    if steps % frameskip:
        raise ValueError(f"{steps} env actions are not a whole number of frameskip={frameskip}")
    return env_actions.reshape(b, steps // frameskip, frameskip * a)


def unpack_actions(actions: Tensor, frameskip: int) -> Tensor:
    """Inverse of :func:`pack_actions`: (B, H, A) -> (B, H * frameskip, A / frameskip)."""
    b, h, a = actions.shape
    return actions.reshape(b, h * frameskip, a // frameskip)


class WorldModel(nn.Module):
    """Encoder + predictor + state probe + decoder, with normalisation; a ``LatentModel``."""

    action_mean_buf: Tensor
    action_std_buf: Tensor
    proprio_mean: Tensor
    proprio_std: Tensor
    state_mean: Tensor
    state_std: Tensor

    def __init__(
        self,
        spec: ModelSpec,
        predictor: PredictorConfig,
        probe: ProbeConfig,
        decoder: DecoderConfig,
        *,
        stats: NormStats | None = None,
        encoder: Encoder | None = None,
    ) -> None:
        super().__init__()
        _check_configs(spec, predictor, probe, decoder)
        self.spec = spec
        self.env_id = spec.env_id
        self.frameskip = spec.frameskip
        self.env_action_dim = spec.env_action_dim
        self.history = spec.history
        self.state_labels = spec.state_labels
        self.predictor = Predictor(predictor)
        self.state_probe = StateProbe(probe)
        self.decoder = Decoder(decoder)
        stats = stats or NormStats.identity(
            predictor.action_dim, predictor.proprio_dim, len(spec.state_labels)
        )
        self.set_stats(stats)
        self.encoder: Encoder | None = None
        if encoder is not None:
            self.attach_encoder(encoder)

    # ----- configuration -------------------------------------------------------------------
    def set_stats(self, stats: NormStats) -> None:
        """Install normalisation statistics (checked against the configured dims)."""
        want = {
            "action": self.predictor.config.action_dim,
            "proprio": self.predictor.config.proprio_dim,
            "state": self.state_probe.config.state_dim,
        }
        for name, value in stats.as_dict().items():
            dim = want[name.split("_")[0]]
            if tuple(value.shape) != (dim,):
                raise ValueError(f"stats {name} must have shape ({dim},), got {tuple(value.shape)}")
            if not torch.isfinite(value).all():
                raise ValueError(f"stats {name} must be finite")
            fixed = value.clamp_min(STD_FLOOR) if name.endswith("_std") else value
            buf = f"{name}_buf" if name.startswith("action") else name
            self.register_buffer(buf, fixed.detach().to(self.device, torch.float32).clone())

    def stats(self) -> NormStats:
        """The installed statistics (copies on the model's device)."""
        return NormStats(
            self.action_mean_buf.clone(),
            self.action_std_buf.clone(),
            self.proprio_mean.clone(),
            self.proprio_std.clone(),
            self.state_mean.clone(),
            self.state_std.clone(),
        )

    def attach_encoder(self, encoder: Encoder) -> None:
        """Use ``encoder`` for :meth:`encode_images`; it must match the spec and the predictor."""
        c = self.predictor.config
        if encoder.encoder_id != self.spec.encoder_id:
            raise ValueError(
                f"model was trained with encoder {self.spec.encoder_id!r}, "
                f"got {encoder.encoder_id!r}"
            )
        if self.spec.encoder_sha256 and encoder.weights_sha256 != self.spec.encoder_sha256:
            raise ValueError(
                f"encoder {encoder.encoder_id!r} weights sha256 {encoder.weights_sha256[:12]}... "
                f"differ from the model's {self.spec.encoder_sha256[:12]}...: "
                "load the encoder weights the model was trained with"
            )
        if (encoder.num_patches, encoder.embed_dim) != (c.num_patches, c.embed_dim):
            raise ValueError(
                f"encoder gives ({encoder.num_patches}, {encoder.embed_dim}) tokens, the model "
                f"needs ({c.num_patches}, {c.embed_dim})"
            )
        size = self.spec.encoder_image_size
        if size and encoder.image_size != size:
            raise ValueError(
                f"model was trained on {encoder.encoder_id} features of {size} px inputs, the "
                f"encoder resizes to {encoder.image_size} px: load it with image_size={size}"
            )
        self.spec = replace(self.spec, encoder_image_size=encoder.image_size)
        # Kept out of the module tree: its weights are not part of this model's state.
        object.__setattr__(self, "encoder", encoder)

    # ----- LatentModel interface -------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return self.predictor.pos_emb.device

    @property
    def action_dim(self) -> int:
        """Planning-action dim: ``env_action_dim * frameskip``."""
        return self.spec.action_dim

    @property
    def action_mean(self) -> Tensor:
        """(A,) mean of planning actions in the training data, env units."""
        return self.action_mean_buf

    @property
    def action_std(self) -> Tensor:
        """(A,) std of planning actions in the training data, env units."""
        return self.action_std_buf

    def normalise_actions(self, actions: Tensor) -> Tensor:
        """Env-unit planning actions (..., A) -> z-scored."""
        return (actions - self.action_mean_buf) / self.action_std_buf

    def normalise_proprio(self, proprio: Tensor) -> Tensor:
        """Raw proprio (..., P) -> z-scored."""
        return (proprio - self.proprio_mean) / self.proprio_std

    def encode_images(self, images: Tensor, proprio: Tensor) -> Latent:
        """Encode frames and raw proprio into a latent.

        Args:
            images: (B, T, H, W, 3) uint8 RGB frames, ``H = W = spec.image_size``.
            proprio: (B, T, P) raw proprio, env units.

        Returns:
            Latent with visual (B, T, N, D) and normalised proprio (B, T, P), on the model's device.
        """
        if self.encoder is None:
            raise RuntimeError("no encoder attached: pass encoder= to load_bundle or WorldModel")
        _check_images(images, self.spec.image_size)
        b, t = images.shape[:2]
        p = self.predictor.config.proprio_dim
        if tuple(proprio.shape) != (b, t, p):
            raise ValueError(f"proprio must be ({b}, {t}, {p}), got {tuple(proprio.shape)}")
        with torch.no_grad():
            enc_device = _device_of(self.encoder, self.device)
            feats = self.encoder(images.flatten(0, 1).to(enc_device))  # (B*T, N, D)
        visual = feats.to(self.device, torch.float32).view(b, t, *feats.shape[1:])  # (B,T,N,D)
        prop = self.normalise_proprio(proprio.to(self.device, torch.float32))  # (B, T, P)
        return Latent(visual, prop)

    def rollout(self, z0: Latent, actions: Tensor, past_actions: Tensor | None = None) -> Latent:
        """Imagine ``H`` planning steps, autoregressively over a sliding window of ``history``.

        Differentiable in ``actions`` and ``z0``. A ``z0`` of batch 1 is broadcast to the
        batch of ``actions``.

        Args:
            z0: Latent (B or 1, T0, ...) of the frames so far; only the last ``history`` are used.
            actions: (B, H, A) planning actions, env units; ``actions[:, 0]`` follows the last
                frame of z0.
            past_actions: (B, T0 - 1, A) env-unit actions taken between the frames of z0; when
                omitted they are taken as the training-mean action.

        Returns:
            Latent (B, H, ...): frame h is the state after ``actions[:, h]``.
        """
        a = self._check_rollout(z0, actions)  # (B, H, A)
        b, horizon = a.shape[:2]
        k = min(z0.visual.shape[1], self.history)
        dt = self.predictor.pos_emb.dtype  # latents may arrive as fp16 features
        vis = z0.visual[:, -k:].to(self.device, dt).expand(b, -1, -1, -1)  # (B, k, N, D)
        prop = z0.proprio[:, -k:].to(self.device, dt).expand(b, -1, -1)  # (B, k, P)
        hist_a = self._past_actions(past_actions, b, k - 1)  # (B, k-1, A) normalised
        out_v: list[Tensor] = []
        out_p: list[Tensor] = []
        for h in range(horizon):
            win_a = torch.cat([hist_a, a[:, h : h + 1]], dim=1)  # (B, k, A)
            v_next, p_next = self.predictor(vis, prop, win_a, last_only=True)  # (B, 1, ...)
            out_v.append(v_next)
            out_p.append(p_next)
            vis = _last(torch.cat([vis, out_v[-1]], dim=1), self.history)  # (B, <=hist, N, D)
            prop = _last(torch.cat([prop, out_p[-1]], dim=1), self.history)  # (B, <=hist, P)
            hist_a = _last(win_a, self.history - 1)  # (B, <=hist-1, A)
        return Latent(torch.cat(out_v, dim=1), torch.cat(out_p, dim=1))

    def probe(self, z: Latent) -> Tensor:
        """Physical state estimate (B, T, S) of latents (B, T, ...), env units."""
        dt = self.predictor.pos_emb.dtype
        s: Tensor = self.state_probe(z.visual.to(self.device, dt), z.proprio.to(self.device, dt))
        return s * self.state_std + self.state_mean  # (B, T, S)

    def decode(self, z: Latent) -> Tensor:
        """Preview frames: latents (B, T, ...) -> uint8 RGB (B, T, s, s, 3), decoder size s."""
        return self.decoder.to_uint8(z.visual.to(self.device, self.predictor.pos_emb.dtype))

    # ----- training helpers ------------------------------------------------------------------
    def predictor_loss(
        self, visual: Tensor, proprio: Tensor, actions: Tensor, proprio_weight: float = 1.0
    ) -> tuple[Tensor, dict[str, float]]:
        """Teacher-forced latent MSE over a window of ``T + 1`` frames.

        Args:
            visual: (B, T+1, N, D) encoder features (any float dtype; targets are detached).
            proprio: (B, T+1, P) normalised proprio.
            actions: (B, T, A) env-unit planning actions; ``actions[:, t]`` leads frame t to t+1.
            proprio_weight: Weight of the proprio MSE next to the visual MSE.

        Returns:
            ``(loss, {"visual_mse", "proprio_mse"})``.
        """
        visual = visual.to(self.device, torch.float32)
        proprio = proprio.to(self.device, torch.float32)
        a = self.normalise_actions(actions.to(self.device, torch.float32))  # (B, T, A)
        v_pred, p_pred = self.predictor(visual[:, :-1], proprio[:, :-1], a)  # (B,T,N,D), (B,T,P)
        v_mse = F.mse_loss(v_pred, visual[:, 1:].detach())
        p_mse = F.mse_loss(p_pred, proprio[:, 1:].detach()) if proprio.shape[-1] else v_mse * 0
        loss = v_mse + proprio_weight * p_mse
        return loss, {"visual_mse": float(v_mse.detach()), "proprio_mse": float(p_mse.detach())}

    def rollout_loss(
        self, visual: Tensor, proprio: Tensor, actions: Tensor, proprio_weight: float = 1.0
    ) -> tuple[Tensor, dict[str, float]]:
        """Open-loop latent MSE: imagine frames ``history .. T`` from the first ``history``.

        The predictor is fed its own predictions, as :meth:`rollout` feeds the planner, and
        the gradient flows through the whole chain.

        Args:
            visual: (B, T+1, N, D) encoder features, ``T >= history``.
            proprio: (B, T+1, P) normalised proprio.
            actions: (B, T, A) env-unit planning actions; ``actions[:, t]`` leads frame t to t+1.
            proprio_weight: Weight of the proprio MSE next to the visual MSE.

        Returns:
            ``(loss, {"rollout_visual_mse", "rollout_proprio_mse"})``, each the mean over
            the ``T + 1 - history`` imagined frames.
        """
        h = self.history
        if visual.shape[1] <= h or actions.shape[1] != visual.shape[1] - 1:
            raise ValueError(
                f"rollout_loss needs T+1 > history = {h} frames and T actions, got "
                f"{visual.shape[1]} frames and {actions.shape[1]} actions"
            )
        visual = visual.to(self.device, torch.float32)
        proprio = proprio.to(self.device, torch.float32)
        z0 = Latent(visual[:, :h], proprio[:, :h])
        z = self.rollout(z0, actions[:, h - 1 :], past_actions=actions[:, : h - 1])
        v_mse = F.mse_loss(z.visual, visual[:, h:].detach())
        p_mse = F.mse_loss(z.proprio, proprio[:, h:].detach()) if proprio.shape[-1] else v_mse * 0
        loss = v_mse + proprio_weight * p_mse
        return loss, {
            "rollout_visual_mse": float(v_mse.detach()),
            "rollout_proprio_mse": float(p_mse.detach()),
        }

    def probe_loss(
        self, visual: Tensor, proprio: Tensor, state: Tensor
    ) -> tuple[Tensor, dict[str, float]]:
        """MSE of the probe on detached latents, in normalised state units.

        Args:
            visual: (B, T, N, D) features.
            proprio: (B, T, P) normalised proprio.
            state: (B, T, S) true state, env units.
        """
        visual = visual.detach().to(self.device, torch.float32)
        proprio = proprio.detach().to(self.device, torch.float32)
        target = (state.to(self.device, torch.float32) - self.state_mean) / self.state_std
        loss = F.mse_loss(self.state_probe(visual, proprio), target)  # (B, T, S) -> ()
        return loss, {"probe_mse": float(loss.detach())}

    def decoder_loss(self, visual: Tensor, images: Tensor) -> tuple[Tensor, dict[str, float]]:
        """Pixel MSE of the decoder on detached latents (B, T, N, D) vs uint8 (B, T, H, W, 3)."""
        size = self.decoder.config.image_size
        target = Decoder.target(images.to(self.device), size)  # (B, T, 3, s, s)
        pred = self.decoder(visual.detach().to(self.device, torch.float32))  # (B, T, 3, s, s)
        loss = F.mse_loss(pred, target)
        return loss, {"decoder_mse": float(loss.detach())}

    # ----- internals -------------------------------------------------------------------------
    def _check_rollout(self, z0: Latent, actions: Tensor) -> Tensor:
        c = self.predictor.config
        if (
            z0.visual.shape[2:] != (c.num_patches, c.embed_dim)
            or z0.proprio.shape[2] != c.proprio_dim
        ):
            raise ValueError(
                f"z0 must be (B, T0, {c.num_patches}, {c.embed_dim}) / (B, T0, {c.proprio_dim}), "
                f"got {tuple(z0.visual.shape)} / {tuple(z0.proprio.shape)}"
            )
        if actions.ndim != 3 or actions.shape[2] != self.action_dim or actions.shape[1] < 1:
            raise ValueError(
                f"actions must be (B, H >= 1, {self.action_dim}) env units "
                f"({self.frameskip} x {self.env_action_dim}-dim env actions), "
                f"got {tuple(actions.shape)}"
            )
        if z0.visual.shape[0] not in (1, actions.shape[0]):
            raise ValueError(
                f"z0 batch {z0.visual.shape[0]} must be 1 or match actions batch {actions.shape[0]}"
            )
        return self.normalise_actions(actions.to(self.device, torch.float32))

    def _past_actions(self, past: Tensor | None, batch: int, count: int) -> Tensor:
        if past is None:
            return torch.zeros(batch, count, self.action_dim, device=self.device)
        if past.ndim != 3 or past.shape[2] != self.action_dim or past.shape[1] < count:
            raise ValueError(
                f"past_actions must be (B, >= {count}, {self.action_dim}), got {tuple(past.shape)}"
            )
        norm = self.normalise_actions(
            past[:, past.shape[1] - count :].to(self.device, torch.float32)
        )
        return norm.expand(batch, -1, -1)  # (B, count, A)


def _last(x: Tensor, k: int) -> Tensor:
    """The last ``k`` entries of ``x`` along dim 1 (``k = 0`` gives an empty slice)."""
    return x[:, max(0, x.shape[1] - k) :]


def _device_of(obj: object, default: torch.device) -> torch.device:
    """Device of an encoder's parameters, or ``default`` for a parameter-free one."""
    if isinstance(obj, nn.Module):
        for p in obj.parameters():
            return p.device
    return default


def _check_images(images: Tensor, size: int) -> None:
    """Raise a clear error unless ``images`` is uint8 (B, T, size, size, 3)."""
    shape = tuple(images.shape)
    want = f"(B, T, {size}, {size}, 3) uint8 RGB"
    if images.ndim != 5:
        raise ValueError(f"images must be {want}, got shape {shape}")
    if images.shape[-1] != 3:
        hint = " (channels first? pass channels last)" if images.shape[2] == 3 else ""
        raise ValueError(f"images must be {want}, got shape {shape}{hint}")
    if images.dtype != torch.uint8:
        raise ValueError(f"images must be {want}, got dtype {images.dtype}")
    if images.shape[2:4] != (size, size):
        raise ValueError(f"images must be {want}, got {shape[2]}x{shape[3]} px")


def _check_configs(
    spec: ModelSpec, pred: PredictorConfig, probe: ProbeConfig, dec: DecoderConfig
) -> None:
    """The four configs must agree on every shared dimension."""
    checks: Sequence[tuple[str, int, int]] = (
        ("predictor.action_dim vs env_action_dim * frameskip", pred.action_dim, spec.action_dim),
        ("predictor.history vs spec.history", pred.history, spec.history),
        ("probe.state_dim vs len(state_labels)", probe.state_dim, len(spec.state_labels)),
        ("probe.num_patches vs predictor.num_patches", probe.num_patches, pred.num_patches),
        ("probe.embed_dim vs predictor.embed_dim", probe.embed_dim, pred.embed_dim),
        ("probe.proprio_dim vs predictor.proprio_dim", probe.proprio_dim, pred.proprio_dim),
        ("decoder.num_patches vs predictor.num_patches", dec.num_patches, pred.num_patches),
        ("decoder.embed_dim vs predictor.embed_dim", dec.embed_dim, pred.embed_dim),
    )
    for what, got, want in checks:
        if got != want:
            raise ValueError(f"config mismatch: {what}: {got} != {want}")
