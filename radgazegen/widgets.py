"""ipywidgets editors the book's chapters use interactively (static figures stand in for the HTML book)."""

from __future__ import annotations

import textwrap
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np

from radgazegen.data.reflacx import DroppedFixationsWarning, ReflacxCase
from radgazegen.plots import show_reading_at


def reading_time_explorer(case: ReflacxCase, out_shape: tuple[int, int] = (128, 128)) -> widgets.VBox:
    """A slider over reading time: the gaze heatmap accumulated up to ``t`` and the words spoken so far."""
    image = case.load_image()
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


def _texture_panel(axes, image: np.ndarray, feature: str, radius: int, bins: int) -> None:
    """The image and its voxel-wise ``feature`` map (kernel radius ``radius``, ``bins`` grey levels) on two axes."""
    from radgazegen.controls.texture import texture_maps

    values = texture_maps(image, feature, kernel_radius=radius, bin_count=bins)[feature]
    axes[0].imshow(image, cmap="gray")
    axes[0].set_title("image")
    shown = axes[1].imshow(values, cmap="magma")
    axes[1].set_title(f"{feature}, r={radius}, {bins} bins")
    axes[1].figure.colorbar(shown, ax=axes[1], fraction=0.046)
    for ax in axes:
        ax.set_axis_off()


def texture_explorer(image: np.ndarray, features: Sequence[str]) -> widgets.VBox:
    """Pick a texture feature, kernel radius and bin count; see the voxel-wise map beside the image."""
    feature = widgets.Dropdown(options=list(features), description="feature")
    radius = widgets.IntSlider(value=2, min=1, max=3, description="kernel r", continuous_update=False)
    bins = widgets.Dropdown(options=[8, 16, 32, 64], value=32, description="bins")
    output = widgets.Output()

    def draw(change: object = None) -> None:
        with output:
            output.clear_output(wait=True)
            figure, axes = plt.subplots(1, 2, figsize=(8, 4))
            _texture_panel(axes, image, feature.value, radius.value, bins.value)
            plt.show()

    for control in (feature, radius, bins):
        control.observe(draw, names="value")
    draw()
    return widgets.VBox([widgets.HBox([feature, radius, bins]), output])


def texture_frames(image: np.ndarray, settings: Sequence[tuple[str, int, int]]) -> plt.Figure:
    """What :func:`texture_explorer` shows for each ``(feature, kernel radius, bins)``, one row each: its stand-in
    in the static HTML book."""
    figure, axes = plt.subplots(len(settings), 2, figsize=(7, 3.2 * len(settings)), squeeze=False)
    for row, (feature, radius, bins) in zip(axes, settings, strict=True):
        _texture_panel(row, image, feature, radius, bins)
    figure.tight_layout()
    return figure


def gaze_editor(pipe, controls: dict[str, np.ndarray], prompts: Sequence[str], *, gaze: str = "gaze", steps: int = 25,
                seed: int = 0) -> widgets.VBox:  # fmt: skip
    """Place a gaze hotspot (row / column sliders), pick a finding and the texture strength, re-sample.

    ``controls`` are the other normalised controls of a case (kept fixed); the gaze control ``gaze`` (the
    HVA-CN input: ``gaze`` or ``gaze_findings``) becomes the hypothesis region of the hotspot
    (:func:`radgazegen.controls.hypotheses.hypothesis_gaze`).
    """
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

    def draw(change: object = None) -> None:
        setting = GazeSetting(finding.value, (row.value, column.value), radius.value, texture.value)
        with output:
            output.clear_output(wait=True)
            figure, axes = plt.subplots(1, 2, figsize=(8, 4))
            _gaze_panel(axes, pipe, controls, setting, gaze=gaze, steps=steps, seed=seed)
            plt.show()

    button.on_click(draw)
    draw()
    return widgets.VBox([widgets.HBox([row, column, radius]), widgets.HBox([finding, texture, button]), output])


@dataclass(frozen=True)
class GazeSetting:
    """One setting of :func:`gaze_editor`: the prompt, the hotspot centre (row, column as fractions of the
    image), its radius (fraction) and the scale of the texture controls."""

    finding: str
    centre: tuple[float, float]
    radius: float = 0.08
    texture: float = 1.0


def _gaze_panel(axes, pipe, controls: dict[str, np.ndarray], setting: GazeSetting, *, gaze: str, steps: int,
                seed: int) -> None:  # fmt: skip
    """Sample one image for ``setting``; its gaze control and the image (hotspot outlined) on two axes."""
    import torch

    from radgazegen.controls.registry import TEXTURE_PREFIX
    from radgazegen.controls.hypotheses import hotspot, hypothesis_gaze

    region = hypothesis_gaze(hotspot(pipe.image_size, setting.centre, setting.radius))
    scales = {name: setting.texture for name in controls if name.startswith(TEXTURE_PREFIX)}
    image = pipe(setting.finding, {**controls, gaze: region}, control_scales=scales, num_inference_steps=steps,
                 generator=torch.Generator().manual_seed(seed), progress=False).images[0]  # fmt: skip
    axes[0].imshow(region, cmap="magma", vmin=0, vmax=1)
    axes[0].set_title("gaze control (hypothesis region)", fontsize=9)
    axes[1].imshow(image, cmap="gray", vmin=0, vmax=1)
    axes[1].contour(region, levels=[0.5], colors="tab:orange", linewidths=1)
    axes[1].set_title(f"texture x{setting.texture:g}: {textwrap.shorten(setting.finding, 36)}", fontsize=9)
    for ax in axes:
        ax.set_axis_off()


def gaze_editor_frames(pipe, controls: dict[str, np.ndarray], settings: Sequence[GazeSetting], *, gaze: str = "gaze",
                       steps: int = 25, seed: int = 0) -> plt.Figure:  # fmt: skip
    """What :func:`gaze_editor` samples for each setting, one row each: its stand-in in the static HTML book."""
    figure, axes = plt.subplots(len(settings), 2, figsize=(7, 3.2 * len(settings)), squeeze=False)
    for row, setting in zip(axes, settings, strict=True):
        _gaze_panel(row, pipe, controls, setting, gaze=gaze, steps=steps, seed=seed)
    figure.tight_layout()
    return figure
