"""ipywidgets editors the book's chapters use interactively (static figures stand in for the HTML book)."""

from __future__ import annotations

import warnings

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np

from radgazegen.controls.gaze import fixation_heatmap
from radgazegen.data.images import load_image
from radgazegen.data.reflacx import DroppedFixationsWarning, ReflacxCase
from radgazegen.plots import show_image, show_overlay


def reading_time_explorer(case: ReflacxCase, out_shape: tuple[int, int] = (128, 128)) -> widgets.VBox:
    """A slider over reading time: the gaze heatmap accumulated up to ``t`` and the words spoken so far."""
    image, _ = load_image(case.image_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DroppedFixationsWarning)
        fixations = case.fixations()
    words = case.words()
    end = float(max(fixations["timestamp_end_fixation"].max(), words["timestamp_end_word"].max()))
    slider = widgets.FloatSlider(
        value=end, min=0.0, max=end, step=0.25, description="time (s)", continuous_update=False
    )
    output = widgets.Output()

    def draw(change: object = None) -> None:
        t = slider.value
        seen = fixations[fixations["timestamp_start_fixation"] <= t]
        spoken = " ".join(w for w in words.loc[words["timestamp_end_word"] <= t, "word"] if w != ".")
        with output:
            output.clear_output(wait=True)
            figure, ax = plt.subplots(figsize=(4.5, 5))
            weights = seen["timestamp_end_fixation"] - seen["timestamp_start_fixation"]
            if len(seen) and float(np.sum(weights)) > 0:
                show_overlay(ax, image, fixation_heatmap(seen, case.image_shape, out_shape), f"{len(seen)} fixations")
            else:
                show_image(ax, image, "no fixation yet")
            ax.text(0.5, -0.02, spoken[-120:], transform=ax.transAxes, ha="center", va="top", fontsize=8, wrap=True)
            plt.show()

    slider.observe(draw, names="value")
    draw()
    return widgets.VBox([slider, output])
