"""Regenerate the golden bundle and its expected outputs used by ``test_bundle.py``.

Run from the repository root when the model code changes on purpose::

    .venv/bin/python tests/world_model/make_golden.py

It writes ``tests/data/golden_bundle/`` (a tiny bundle, a few KB) and
``tests/data/golden_expected.safetensors`` (fixed inputs and the outputs the
bundle gives on them).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tiny_model import A, tiny_inputs, tiny_model

from world_model.bundle import save_bundle
from world_model.model import WorldModel

DATA = Path(__file__).resolve().parents[1] / "data"
BUNDLE = DATA / "golden_bundle"
EXPECTED = DATA / "golden_expected.safetensors"


def golden_inputs() -> dict[str, Tensor]:
    """The fixed inputs: 2 samples, 2 context frames, 4 planning steps."""
    images, proprio = tiny_inputs(batch=2, frames=2, seed=11)
    gen = torch.Generator().manual_seed(12)
    actions = torch.randn(2, 4, A, generator=gen)
    return {"images": images, "proprio": proprio, "actions": actions}


def golden_outputs(model: WorldModel, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
    """Everything the model computes on the golden inputs."""
    with torch.no_grad():
        z0 = model.encode_images(inputs["images"], inputs["proprio"])
        z = model.rollout(z0, inputs["actions"])
        return {
            "z0_visual": z0.visual,
            "z0_proprio": z0.proprio,
            "rollout_visual": z.visual,
            "rollout_proprio": z.proprio,
            "probe": model.probe(z),
            "decoded": model.decode(z),
        }


def main() -> None:
    """Write the golden bundle and the expected outputs."""
    model = tiny_model(seed=7)
    # Perturb the zero-initialised parts so the golden outputs exercise every weight.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    save_bundle(model, BUNDLE, {"val_visual_mse": 0.5}, {"episodes": 0}, overwrite=True)
    inputs = golden_inputs()
    save_file({**inputs, **golden_outputs(model, inputs)}, str(EXPECTED))
    print(f"wrote {BUNDLE} and {EXPECTED}")


if __name__ == "__main__":
    main()
