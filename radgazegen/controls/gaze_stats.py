"""Where the gaze went: share of each finding's gaze inside its annotated region, over a data set."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from radgazegen.controls.gaze import finding_heatmaps, fixation_heatmap
from radgazegen.data.reflacx import DroppedFixationsWarning, ReflacxCase, ReflacxDataset

#: Words that name a REFLACX label in a report (labels not listed use their own last word).
LABEL_KEYWORDS: dict[str, tuple[str, ...]] = {
    "Pleural effusion": ("effusion",),
    "Pleural abnormality": ("effusion", "pleural"),
    "Enlarged cardiac silhouette": ("cardiac", "cardiomegaly", "heart size is enlarged"),
    "Lung nodule or mass": ("nodule", "mass"),
    "Groundglass opacity": ("ground glass", "groundglass"),
    "High lung volume / emphysema": ("emphysema", "hyperinflat"),
}


def keywords_for(label: str) -> tuple[str, ...]:
    """The report words that name ``label`` (see :data:`LABEL_KEYWORDS`)."""
    return LABEL_KEYWORDS.get(label, (label.split()[-1].lower(),))


def ellipse_coverage(
    ellipses: pd.DataFrame, image_shape: tuple[int, int], out_shape: tuple[int, int] | None = None, samples: int = 4
) -> np.ndarray:
    """Share of each output cell inside the union of the ellipses inscribed in the rows' boxes.

    Boxes are (xmin, ymin, xmax, ymax) in image pixels; each output cell of ``out_shape``
    (default: the image grid) is sampled at ``samples`` x ``samples`` points, so the cost does not
    grow with the image size.
    """
    height, width = image_shape
    rows_out, cols_out = out_shape or image_shape
    ys = (np.arange(rows_out * samples) + 0.5) * height / (rows_out * samples)
    xs = (np.arange(cols_out * samples) + 0.5) * width / (cols_out * samples)
    inside = np.zeros((ys.size, xs.size), dtype=bool)
    for xmin, ymin, xmax, ymax in ellipses[["xmin", "ymin", "xmax", "ymax"]].itertuples(index=False):
        rx, ry = max((xmax - xmin) / 2, 0.5), max((ymax - ymin) / 2, 0.5)
        dx = ((xs - (xmin + xmax) / 2) / rx) ** 2
        dy = ((ys - (ymin + ymax) / 2) / ry) ** 2
        inside |= dy[:, None] + dx[None, :] <= 1.0
    return inside.reshape(rows_out, samples, cols_out, samples).mean(axis=(1, 3))


def case_gaze_statistics(
    case: ReflacxCase, out_shape: tuple[int, int], keywords: Mapping[str, Sequence[str]] | None = None
) -> pd.DataFrame:
    """One row per annotated label of a reading.

    Columns: ``mass_finding`` = share of the gaze around the sentences naming the label that
    falls inside its ellipses; ``mass_reading`` = the same share for the whole reading's gaze;
    ``area`` = the ellipses' share of the image (the share expected from gaze spread uniformly).
    """
    ellipses = case.ellipses()
    labels = [
        c for c in ellipses.columns if c not in ("xmin", "ymin", "xmax", "ymax", "certainty") and ellipses[c].any()
    ]
    if not labels:
        return pd.DataFrame()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DroppedFixationsWarning)  # counted in attrs, reported by the caller
        fixations = case.fixations()
        whole = fixation_heatmap(fixations, case.image_shape, out_shape)
        per_label = finding_heatmaps(
            fixations,
            case.words(),
            {label: (keywords or {}).get(label, keywords_for(label)) for label in labels},
            case.image_shape,
            out_shape,
        )
    rows = []
    for label in labels:
        region = ellipse_coverage(ellipses[ellipses[label]], case.image_shape, out_shape)
        heat = per_label.get(label)
        rows.append(
            {
                "id": case.id,
                "label": label,
                "mass_finding": float((heat * region).sum()) if heat is not None and heat.sum() > 0 else np.nan,
                "mass_reading": float((whole * region).sum()),
                "area": float(region.mean()),
            }
        )
    return pd.DataFrame(rows)


def dataset_gaze_statistics(
    dataset: ReflacxDataset, out_shape: tuple[int, int] = (128, 128), *, progress: bool = True
) -> pd.DataFrame:
    """:func:`case_gaze_statistics` for every reading, plus the fixations each one dropped."""
    frames = []
    for case in tqdm(dataset, total=len(dataset), desc="gaze statistics", unit="reading", disable=not progress):
        frame = case_gaze_statistics(case, out_shape)
        if not frame.empty:
            frames.append(frame)
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["id", "label", "mass_finding", "mass_reading", "area"])
    )


def dropped_fixation_counts(dataset: ReflacxDataset) -> pd.DataFrame:
    """Per reading: fixations read, dropped outside the shown rectangle, dropped outside the image."""
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DroppedFixationsWarning)
        for case in dataset:
            kept = case.fixations()
            dropped = kept.attrs["dropped"]
            rows.append(
                {
                    "id": case.id,
                    "kept": len(kept),
                    "outside_shown": dropped.outside_shown,
                    "outside_image": dropped.outside_image,
                }
            )
    return pd.DataFrame(rows)
