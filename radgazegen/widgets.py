"""ipywidgets editors the book's chapters use interactively (static figures stand in for the HTML book)."""

from __future__ import annotations

import warnings

import ipywidgets as widgets
import matplotlib.pyplot as plt

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
