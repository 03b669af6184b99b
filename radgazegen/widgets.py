"""ipywidgets editors the book's chapters use interactively (static figures stand in for the HTML book)."""

from __future__ import annotations

import textwrap
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


def gaze_editor(pipe, controls: dict[str, np.ndarray], prompts: Sequence[str], *, steps: int = 25,
                seed: int = 0) -> widgets.VBox:  # fmt: skip
    """Place a gaze hotspot (row / column sliders), pick a finding and the texture strength, re-sample.

    ``controls`` are the other normalised controls of a case (kept fixed); the gaze control becomes
    the hypothesis region of the hotspot (:func:`radgazegen.models.hypotheses.hypothesis_gaze`).
    """
    import torch

    from radgazegen.controls.registry import TEXTURE_PREFIX
    from radgazegen.models.hypotheses import hotspot, hypothesis_gaze

    size = pipe.image_size
    row = widgets.FloatSlider(value=0.4, min=0.05, max=0.95, step=0.05, description="row", continuous_update=False)
    column = widgets.FloatSlider(value=0.3, min=0.05, max=0.95, step=0.05, description="column",
                                 continuous_update=False)  # fmt: skip
    radius = widgets.FloatSlider(value=0.08, min=0.03, max=0.2, step=0.01, description="radius",
                                 continuous_update=False)  # fmt: skip
    finding = widgets.Dropdown(options=list(prompts), description="finding", layout=widgets.Layout(width="60%"))
    texture = widgets.FloatSlider(value=1.0, min=0.0, max=2.0, step=0.25, description="texture",
                                  continuous_update=False)  # fmt: skip
    button = widgets.Button(description="sample", button_style="primary")
    output = widgets.Output()
    textures = [name for name in controls if name.startswith(TEXTURE_PREFIX)]

    def draw(change: object = None) -> None:
        gaze = hypothesis_gaze(hotspot(size, (row.value, column.value), radius.value))
        given = {**controls, "gaze": gaze}
        scales = {name: texture.value for name in textures}
        image = pipe(finding.value, given, control_scales=scales, num_inference_steps=steps,
                     generator=torch.Generator().manual_seed(seed), progress=False).images[0]  # fmt: skip
        with output:
            output.clear_output(wait=True)
            figure, axes = plt.subplots(1, 2, figsize=(8, 4))
            axes[0].imshow(gaze, cmap="magma", vmin=0, vmax=1)
            axes[0].set_title("gaze control (hypothesis region)", fontsize=9)
            axes[1].imshow(image, cmap="gray", vmin=0, vmax=1)
            axes[1].contour(gaze, levels=[0.5], colors="tab:orange", linewidths=1)
            axes[1].set_title(textwrap.shorten(finding.value, 48), fontsize=9)
            for ax in axes:
                ax.set_axis_off()
            plt.show()

    button.on_click(draw)
    draw()
    return widgets.VBox([widgets.HBox([row, column, radius]), widgets.HBox([finding, texture, button]), output])
