"""How texture features separate the phantom's finding types: mean map values inside each finding vs healthy lung."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from radgazegen.controls.texture import texture_maps
from radgazegen.data.images import load_mask
from radgazegen.data.phantom.truth import read_findings
from radgazegen.data.reflacx import ReflacxDataset
from radgazegen.data.resample import area_resample

HEALTHY = "healthy lung"
MIN_VOXELS = 4
"""Regions smaller than this (at the working resolution) are skipped."""


def region_texture_values(
    dataset: ReflacxDataset,
    features: Sequence[str],
    *,
    long_side: int = 144,
    kernel_radius: int = 2,
    bin_count: int = 32,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> pd.DataFrame:
    """One row per case, region and feature: the mean of the feature's map over the region.

    Regions are each ground-truth finding of the phantom (``phantom/findings.csv``) and the healthy
    lung (lung mask minus all findings). Images are area-resampled so their long side is ``long_side``
    pixels before the maps are computed (the control-map scale rather than full resolution).
    """
    root = Path(dataset.root)
    truth = read_findings(root)
    rows = []
    for case in tqdm(list(dataset), desc="texture by region", unit="case", disable=not progress):
        image = case.load_image()
        shape = image.shape
        scale = long_side / max(shape)
        small_shape = (max(8, round(shape[0] * scale)), max(8, round(shape[1] * scale)))
        small = area_resample(image, small_shape, mean=True)
        maps = texture_maps(small, list(features), kernel_radius=kernel_radius, bin_count=bin_count, device=device)
        lungs = _shrink(load_mask(root / "phantom" / "lungs" / f"{case.dicom_id}.png"), small_shape)
        regions: dict[str, list[np.ndarray]] = {}
        for finding in truth[truth["dicom_id"] == case.dicom_id].itertuples():
            regions.setdefault(finding.finding, []).append(_shrink(load_mask(root / finding.mask), small_shape))
        anything = np.zeros(small_shape, bool)
        for masks in regions.values():
            for mask in masks:
                anything |= mask
        regions[HEALTHY] = [lungs & ~anything]
        for region, masks in regions.items():
            for mask in masks:
                if mask.sum() < MIN_VOXELS:
                    continue
                for feature in features:
                    value = float(np.nanmean(maps[feature][mask]))
                    rows.append({"case": case.id, "region": region, "feature": feature, "value": value})
    return pd.DataFrame(rows, columns=["case", "region", "feature", "value"])


def _shrink(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return area_resample(mask.astype(np.float64), shape, mean=True) >= 0.5


def separation(table: pd.DataFrame) -> pd.DataFrame:
    """Per feature and finding type: the standardised mean difference from healthy lung (Cohen's d)."""
    result = []
    for feature, by_feature in table.groupby("feature"):
        healthy = by_feature.loc[by_feature["region"] == HEALTHY, "value"]
        for region, values in by_feature[by_feature["region"] != HEALTHY].groupby("region")["value"]:
            pooled = np.sqrt((values.var(ddof=1) + healthy.var(ddof=1)) / 2) if len(values) > 1 else np.nan
            effect = (values.mean() - healthy.mean()) / pooled if pooled and pooled > 0 else np.nan
            result.append({"feature": feature, "finding": region, "n": len(values), "cohens_d": effect})
    return pd.DataFrame(result).pivot(index="finding", columns="feature", values="cohens_d")
