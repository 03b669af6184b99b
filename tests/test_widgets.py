from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from radgazegen.data.images import load_image  # noqa: E402
from radgazegen.data.reflacx import DroppedFixationsWarning, ReflacxDataset  # noqa: E402
from radgazegen.plots import reading_timeline, show_reading_at  # noqa: E402
from radgazegen.widgets import reading_time_explorer  # noqa: E402


def _case(phantom_dir: Path):
    dataset = ReflacxDataset(phantom_dir)
    return dataset.case(dataset.ids[0])


def test_reading_frames_show_the_gaze_so_far(phantom_dir: Path) -> None:
    case = _case(phantom_dir)
    image, _ = load_image(case.image_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DroppedFixationsWarning)
        fixations = case.fixations()
    words = case.words()
    figure, ax = plt.subplots()
    assert show_reading_at(ax, image, fixations, words, -1.0, (24, 20)) == 0
    assert len(ax.images) == 1  # the image alone
    figure, ax = plt.subplots()
    assert show_reading_at(ax, image, fixations, words, 1e9, (24, 20)) == len(fixations)
    assert len(ax.images) == 2 and words["word"].iloc[-2] in ax.texts[0].get_text()  # image + heatmap, last word
    timeline = reading_timeline(image, fixations, words, [1.0, 5.0, 10.0], (24, 20))
    assert len(timeline.axes) == 3
    plt.close("all")


def test_reading_time_slider_spans_the_reading(phantom_dir: Path) -> None:
    case = _case(phantom_dir)
    slider, _ = reading_time_explorer(case, (24, 20)).children
    assert slider.value == slider.max >= case.words()["timestamp_end_word"].max()
    slider.value = 0.0  # redraws without error
    plt.close("all")


def test_texture_explorer_redraws_for_each_setting() -> None:
    import numpy as np

    from radgazegen.widgets import texture_explorer

    plt.close("all")
    image = np.random.default_rng(0).random((24, 20))
    controls, _ = texture_explorer(image, ["glcm_Contrast", "firstorder_Mean"]).children
    feature, radius, bins = controls.children
    assert feature.value == "glcm_Contrast" and radius.value == 2 and bins.value == 32
    feature.value, radius.value, bins.value = "firstorder_Mean", 1, 8  # each change redraws
    assert len(plt.get_fignums()) == 4
    assert plt.gcf().axes[1].get_title() == "firstorder_Mean, r=1, 8 bins"
    plt.close("all")


def test_texture_frames_show_one_setting_per_row() -> None:
    import numpy as np

    from radgazegen.widgets import texture_frames

    image = np.random.default_rng(0).random((24, 20))
    figure = texture_frames(image, [("glcm_Contrast", 2, 32), ("firstorder_Mean", 1, 8)])
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titles == ["image", "glcm_Contrast, r=2, 32 bins", "image", "firstorder_Mean, r=1, 8 bins"]
    plt.close("all")
