"""Synthetic data shared by the tests: images with known segmentations, and a tiny trained study on the phantom."""

from __future__ import annotations

import numpy as np


def disks(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, size, size) noisy images in [0, 1] with one bright disk each, and the disks' masks."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size]
    images, masks = np.empty((n, size, size), np.float32), np.empty((n, size, size), bool)
    for k in range(n):
        centre, radius = rng.uniform(size / 5, 4 * size / 5, 2), rng.uniform(size / 12, size / 6)
        masks[k] = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2
        images[k] = np.clip(0.4 + 0.1 * rng.standard_normal((size, size)) + 0.3 * masks[k], 0, 1)
    return images, masks


def phantom_study(root, preset, controls: list[str], *, n: int, seed: int):
    """A :class:`~radgazegen.evaluation.study.Study` of ``n`` phantom readings (192 x 160) under ``root``, with
    the base model and one ControlNet per control trained at ``preset``."""
    from radgazegen.data.phantom import generate_phantom
    from radgazegen.data.reflacx import ReflacxDataset
    from radgazegen.evaluation.study import Study
    from radgazegen.models.train import train

    dataset = ReflacxDataset(generate_phantom(root / "reflacx", n=n, seed=seed, size=(192, 160), progress=False))
    run_dir = root / "run"
    train(preset, run_dir, "base", dataset, progress=False)
    train(preset, run_dir, "controlnet", dataset, controls=controls, progress=False)
    return Study(preset, run_dir, dataset, progress=False)


def tiny_rad_dino(folder):
    """A RAD-DINO stand-in saved with ``save_pretrained``: a 1-layer DINOv2 (16 wide, 28 px, patch 14) and its processor."""
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    model = Dinov2Model(Dinov2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=24,
                                     image_size=28, patch_size=14)).eval()  # fmt: skip
    processor = BitImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28},
                                  image_mean=[0.5, 0.5, 0.5], image_std=[0.25, 0.25, 0.25])  # fmt: skip
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return model, processor
