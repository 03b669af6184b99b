from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from radgazegen.data.phantom import generate_phantom


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small phantom data set shared by the tests (read-only: copy it before changing files)."""
    return generate_phantom(
        tmp_path_factory.mktemp("phantom") / "reflacx", n=10, seed=3, size=(192, 160), progress=False
    )


@pytest.fixture
def phantom_copy(phantom_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the phantom data set that a test may damage."""
    return Path(shutil.copytree(phantom_dir, tmp_path / "reflacx"))


@pytest.fixture(scope="session")
def disk_segmenter():
    """A finding segmenter trained on synthetic bright disks (32 px), shared by the segmenter and adherence tests."""
    from synthetic import disks

    from radgazegen.evaluation.segmenter import train_segmenter

    images, masks = disks(64, 32, seed=0)
    return train_segmenter(images, masks, epochs=20, batch_size=8, width=8, progress=False)


@pytest.fixture(scope="session")
def trained_run(phantom_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A smoke-preset run on :func:`phantom_dir`: base UNet, multi-mode ControlNets for canny and gaze and one fused
    ControlNet, trained once and shared by the model, study and chapter-helper tests (read-only: copy it first)."""
    from radgazegen.data.reflacx import ReflacxDataset
    from radgazegen.models.train import train
    from radgazegen.presets import get_preset

    smoke, run_dir, dataset = get_preset("smoke"), tmp_path_factory.mktemp("run"), ReflacxDataset(phantom_dir)
    train(smoke, run_dir, "base", dataset, progress=False)
    train(smoke, run_dir, "controlnet", dataset, controls=["canny", "gaze"], progress=False)
    train(smoke, run_dir, "controlnet", dataset, mode="fused", controls=["canny", "gaze"], progress=False)
    return run_dir
