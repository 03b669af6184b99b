"""ipywidgets editors the book's chapters use interactively (static figures stand in for the HTML book)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np

from radgazegen.data.images import load_image
from radgazegen.data.reflacx import DroppedFixationsWarning, ReflacxCase
from radgazegen.plots import show_reading_at


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
        with output:
            output.clear_output(wait=True)
            figure, ax = plt.subplots(figsize=(4.5, 5))
            show_reading_at(ax, image, fixations, words, slider.value, out_shape)
            plt.show()

    slider.observe(draw, names="value")
    draw()
    return widgets.VBox([slider, output])


def texture_explorer(image: np.ndarray, features: Sequence[str]) -> widgets.VBox:
    """Pick a texture feature, kernel radius and bin count; see the voxel-wise map beside the image."""
    from radgazegen.controls.texture import texture_maps

    feature = widgets.Dropdown(options=list(features), description="feature")
    radius = widgets.IntSlider(value=2, min=1, max=3, description="kernel r", continuous_update=False)
    bins = widgets.Dropdown(options=[8, 16, 32, 64], value=32, description="bins")
    output = widgets.Output()

    def draw(change: object = None) -> None:
        with output:
            output.clear_output(wait=True)
            values = texture_maps(image, feature.value, kernel_radius=radius.value, bin_count=bins.value)[feature.value]
            figure, axes = plt.subplots(1, 2, figsize=(8, 4))
            axes[0].imshow(image, cmap="gray")
            axes[0].set_title("image")
            shown = axes[1].imshow(values, cmap="magma")
            axes[1].set_title(f"{feature.value}, r={radius.value}, {bins.value} bins")
            figure.colorbar(shown, ax=axes[1], fraction=0.046)
            for ax in axes:
                ax.set_axis_off()
            plt.show()

    for control in (feature, radius, bins):
        control.observe(draw, names="value")
    draw()
    return widgets.VBox([widgets.HBox([feature, radius, bins]), output])
