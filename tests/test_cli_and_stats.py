from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radgazegen.cli import main
from radgazegen.controls.gaze_stats import dataset_gaze_statistics, dropped_fixation_counts, ellipse_coverage
from radgazegen.data.reflacx import ReflacxDataset
from radgazegen.presets import get_preset
from radgazegen.runs import prepare_dataset


def test_cli_writes_a_phantom(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["data", "phantom", "--out", str(tmp_path / "p"), "--n", "3", "--seed", "1", "--size", "160", "128"]) == 0
    )
    assert len(ReflacxDataset(tmp_path / "p")) == 3
    assert "phantom data set" in capsys.readouterr().out


def test_unknown_preset_lists_the_names() -> None:
    with pytest.raises(KeyError, match="unknown preset 'tiny'.*smoke"):
        get_preset("tiny")


def test_prepare_dataset_generates_once_then_reuses(tmp_path: Path) -> None:
    dataset = prepare_dataset(get_preset("smoke"), run_dir=tmp_path)
    stamp = (tmp_path / "dataset" / "phantom" / "manifest.json").stat().st_mtime_ns
    again = prepare_dataset(get_preset("smoke"), run_dir=tmp_path)
    assert len(dataset) == len(again) == get_preset("smoke").phantom_cases
    assert (tmp_path / "dataset" / "phantom" / "manifest.json").stat().st_mtime_ns == stamp


def test_gaze_concentrates_on_annotated_findings(phantom_dir: Path) -> None:
    dataset = ReflacxDataset(phantom_dir)
    stats = dataset_gaze_statistics(dataset, (48, 40), progress=False)
    assert len(stats) >= 3
    assert (stats["mass_finding"] > stats["area"]).mean() > 0.8
    dropped = dropped_fixation_counts(dataset)
    assert len(dropped) == len(dataset) and dropped["outside_shown"].sum() + dropped["outside_image"].sum() > 0


def test_ellipse_coverage_is_inscribed_in_its_box() -> None:
    import pandas as pd

    box = pd.DataFrame({"xmin": [2.0], "ymin": [4.0], "xmax": [12.0], "ymax": [8.0]})
    mask = ellipse_coverage(box, (12, 16), samples=1)
    assert mask[6, 7] == 1 and mask[4, 2] == 0 and mask[0, 0] == 0
    fine = ellipse_coverage(box, (12, 16), samples=16)
    assert fine.sum() == pytest.approx(np.pi * 5 * 2, rel=0.01)  # area of the ellipse, in pixels
    coarse = ellipse_coverage(box, (12, 16), (3, 4), samples=64)
    assert coarse.mean() * 12 * 16 == pytest.approx(np.pi * 5 * 2, rel=0.01)
