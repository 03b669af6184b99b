"""Figures the book shows: scan paths, heatmap overlays, annotated ellipses, reading timelines."""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.patches import Ellipse


def show_image(ax: Axes, image: np.ndarray, title: str | None = None) -> None:
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)


def show_scanpath(ax: Axes, image: np.ndarray, fixations: pd.DataFrame, title: str | None = None) -> None:
    """Fixations as circles (area ~ duration, colour = time) joined in reading order."""
    show_image(ax, image, title)
    duration = (fixations["timestamp_end_fixation"] - fixations["timestamp_start_fixation"]).to_numpy()
    x, y = fixations["x_position"].to_numpy(), fixations["y_position"].to_numpy()
    ax.plot(x, y, color="white", linewidth=0.5, alpha=0.5)
    points = ax.scatter(
        x,
        y,
        s=400 * duration,
        c=fixations["timestamp_start_fixation"],
        cmap="viridis",
        alpha=0.75,
        edgecolors="white",
        linewidths=0.4,
    )
    plt.colorbar(points, ax=ax, fraction=0.046, pad=0.02, label="time (s)")


def show_overlay(
    ax: Axes, image: np.ndarray, heatmap: np.ndarray, title: str | None = None, alpha: float = 0.85
) -> None:
    """A heatmap (any resolution) over the image, stretched to the image's extent."""
    show_image(ax, image, title)
    height, width = image.shape
    level = np.asarray(heatmap, dtype=float) / max(float(np.max(heatmap)), 1e-300)
    colours = plt.get_cmap("inferno")(level)
    colours[..., 3] = alpha * np.sqrt(level)  # transparent where there is no gaze
    ax.imshow(colours, extent=(0, width, height, 0), interpolation="bilinear")


def draw_ellipses(
    ax: Axes, ellipses: pd.DataFrame, scale: tuple[float, float] = (1.0, 1.0), color: str = "cyan"
) -> None:
    """Outline the ellipses inscribed in each (xmin, ymin, xmax, ymax) box; ``scale`` = (sy, sx)."""
    sy, sx = scale
    for xmin, ymin, xmax, ymax in ellipses[["xmin", "ymin", "xmax", "ymax"]].itertuples(index=False):
        ax.add_patch(
            Ellipse(
                ((xmin + xmax) / 2 * sx, (ymin + ymax) / 2 * sy),
                (xmax - xmin) * sx,
                (ymax - ymin) * sy,
                fill=False,
                edgecolor=color,
                linewidth=1.2,
            )
        )


def show_reading_at(
    ax: Axes, image: np.ndarray, fixations: pd.DataFrame, words: pd.DataFrame, t: float, out_shape: tuple[int, int]
) -> int:
    """The gaze accumulated up to ``t`` seconds over the image, the words spoken so far below it.

    Returns the number of fixations shown (the title says it too).
    """
    from radgazegen.controls.gaze import fixation_heatmap

    seen = fixations[fixations["timestamp_start_fixation"] <= t]
    spoken = " ".join(w for w in words.loc[words["timestamp_end_word"] <= t, "word"] if w != ".")
    if (seen["timestamp_end_fixation"] > seen["timestamp_start_fixation"]).any():
        show_overlay(ax, image, fixation_heatmap(seen, image.shape, out_shape))
    else:
        show_image(ax, image)
    ax.set_title(f"t = {t:.1f} s, {len(seen)} fixations", fontsize=9)
    ax.text(0.5, -0.04, textwrap.fill(spoken[-90:], 38), transform=ax.transAxes, ha="center", va="top", fontsize=7)
    return len(seen)


def reading_timeline(
    image: np.ndarray, fixations: pd.DataFrame, words: pd.DataFrame, times: list[float], out_shape: tuple[int, int]
) -> plt.Figure:
    """Static frames of :func:`show_reading_at` at several reading times."""
    figure, axes = plt.subplots(1, len(times), figsize=(3 * len(times), 3.6))
    for ax, t in zip(np.atleast_1d(axes), times, strict=True):
        show_reading_at(ax, image, fixations, words, t, out_shape)
    figure.tight_layout()
    return figure
