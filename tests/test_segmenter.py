"""The finding segmenter: learns a simple segmentation, is deterministic, saves and loads exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from synthetic import disks

from radgazegen.errors import DataFormatError, MissingWeightsError
from radgazegen.evaluation.segmenter import FindingSegmenter, train_segmenter


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def test_the_segmenter_finds_bright_disks_in_held_out_images(disk_segmenter: FindingSegmenter) -> None:
    images, masks = disks(16, 32, seed=1)
    probabilities = disk_segmenter.predict(images)
    assert probabilities.shape == (16, 32, 32) and probabilities.dtype == np.float32
    assert 0 <= probabilities.min() and probabilities.max() <= 1
    assert dice(disk_segmenter.masks(images), masks) > 0.7
    assert not disk_segmenter.training
    odd = disk_segmenter.predict(disks(2, 30, seed=2)[0])  # sizes that the poolings do not divide are padded
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


def test_save_and_load_round_trip_exactly(disk_segmenter: FindingSegmenter, tmp_path) -> None:
    images, _ = disks(4, 32, seed=4)
    folder = disk_segmenter.save(tmp_path / "segmenter")
    assert sorted(p.name for p in folder.iterdir()) == ["segmenter.json", "segmenter.safetensors"]
    loaded = FindingSegmenter.load(folder)
    assert loaded.width == 8 and not loaded.training
    np.testing.assert_array_equal(loaded.predict(images), disk_segmenter.predict(images))


def test_load_names_the_missing_or_malformed_file(disk_segmenter: FindingSegmenter, tmp_path) -> None:
    with pytest.raises(MissingWeightsError, match="segmenter.json"):
        FindingSegmenter.load(tmp_path / "nowhere")
    folder = disk_segmenter.save(tmp_path / "segmenter")
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
