"""The finding segmenter: learns a simple segmentation, is deterministic, saves and loads exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from radgazegen.errors import DataFormatError, MissingWeightsError
from radgazegen.evaluation.segmenter import FindingSegmenter, train_segmenter


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


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


@pytest.fixture(scope="module")
def trained() -> FindingSegmenter:
    images, masks = disks(64, 32, seed=0)
    return train_segmenter(images, masks, epochs=20, batch_size=8, width=8, progress=False)


def test_the_segmenter_finds_bright_disks_in_held_out_images(trained: FindingSegmenter) -> None:
    images, masks = disks(16, 32, seed=1)
    probabilities = trained.predict(images)
    assert probabilities.shape == (16, 32, 32) and probabilities.dtype == np.float32
    assert 0 <= probabilities.min() and probabilities.max() <= 1
    assert dice(trained.masks(images), masks) > 0.7
    assert not trained.training
    odd = trained.predict(disks(2, 30, seed=2)[0])  # sizes that the poolings do not divide are padded
    assert odd.shape == (2, 30, 30)


def test_training_is_deterministic_and_leaves_torch_state_alone() -> None:
    images, masks = disks(8, 16, seed=3)
    threads, state = torch.get_num_threads(), torch.get_rng_state()
    first = train_segmenter(images, masks, epochs=2, width=4, seed=5, progress=False)
    second = train_segmenter(images, masks, epochs=2, width=4, seed=5, progress=False)
    other = train_segmenter(images, masks, epochs=2, width=4, seed=6, progress=False)
    assert torch.get_num_threads() == threads and torch.equal(torch.get_rng_state(), state)
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, second.state_dict()[name]), name
    assert not torch.equal(first.head.weight, other.head.weight)


def test_save_and_load_round_trip_exactly(trained: FindingSegmenter, tmp_path) -> None:
    images, _ = disks(4, 32, seed=4)
    folder = trained.save(tmp_path / "segmenter")
    assert sorted(p.name for p in folder.iterdir()) == ["segmenter.json", "segmenter.safetensors"]
    loaded = FindingSegmenter.load(folder)
    assert loaded.width == 8 and not loaded.training
    np.testing.assert_array_equal(loaded.predict(images), trained.predict(images))


def test_load_names_the_missing_or_malformed_file(trained: FindingSegmenter, tmp_path) -> None:
    with pytest.raises(MissingWeightsError, match="segmenter.json"):
        FindingSegmenter.load(tmp_path / "nowhere")
    folder = trained.save(tmp_path / "segmenter")
    (folder / "segmenter.json").write_text(json.dumps({"format": "radgazegen.FindingSegmenter", "width": 4}))
    with pytest.raises(DataFormatError, match=r"segmenter\.safetensors: weights do not fit a width-4"):
        FindingSegmenter.load(folder)
    (folder / "segmenter.json").write_text("{not json")
    with pytest.raises(DataFormatError, match="not valid JSON"):
        FindingSegmenter.load(folder)
    (folder / "segmenter.json").write_text(json.dumps({"width": 8}))
    with pytest.raises(DataFormatError, match="format"):
        FindingSegmenter.load(folder)
    (folder / "segmenter.safetensors").unlink()
    with pytest.raises(MissingWeightsError, match="segmenter.safetensors"):
        FindingSegmenter.load(folder)


def test_bad_training_inputs_are_refused() -> None:
    images, masks = disks(4, 16, seed=5)
    with pytest.raises(ValueError, match="differ in shape"):
        train_segmenter(images, masks[:, :8], epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        train_segmenter(images * 2, masks, epochs=1, progress=False)
    with pytest.raises(ValueError, match="binary"):
        train_segmenter(images, masks * 2.0, epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"\(n, S, S\)"):
        train_segmenter(images[0], masks[0], epochs=1, progress=False)
    with pytest.raises(ValueError, match="epochs"):
        train_segmenter(images, masks, epochs=0, progress=False)
