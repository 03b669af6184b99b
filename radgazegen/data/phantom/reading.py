"""Templated reports and a simulated reading session: speech with word timestamps, and a scan path
whose fixations dwell on what is being described (gaze leads speech by about a second)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from radgazegen.data.phantom.anatomy import Anatomy
from radgazegen.data.phantom.findings import Finding, zone_region

SCREEN = (1920, 1080)  # screen width, height (px)
SCREEN_PX_PER_DEGREE = 40.0  # a 53 cm wide 1920 px monitor seen from about 60 cm
GAZE_LEAD_S = (0.6, 1.4)  # the eye-voice span: gaze reaches a region before it is named


@dataclasses.dataclass
class Sentence:
    """One report sentence and where the reader looks while dictating it."""

    text: str
    target: np.ndarray  # bool mask
    finding: str | None = None


_TEMPLATES = {
    "pleural effusion": ["There is a {size} {side} pleural effusion.", "{Size} {side} pleural effusion."],
    "consolidation": ["Patchy consolidation in the {side} {zone} zone.", "There is {side} {zone} zone consolidation."],
    "enlarged cardiac silhouette": ["The cardiac silhouette is enlarged.", "Enlarged cardiac silhouette."],
    "atelectasis": ["Linear atelectasis in the {side} {zone} zone.", "There is {side} {zone} zone atelectasis."],
    "nodule": ["A {size} nodule in the {side} {zone} zone.", "There is a {size} {side} {zone} zone nodule."],
    "mass": ["There is a {size} mass in the {side} {zone} zone.", "A {size} {side} {zone} zone mass is seen."],
    "pneumothorax": ["There is a small {side} apical pneumothorax.", "Small {side} pneumothorax."],
}


def compose_report(rng: np.random.Generator, anatomy: Anatomy, findings: list[Finding]) -> list[Sentence]:
    """Sentences naming each finding (side, zone, size), then the pertinent negatives."""
    sentences = []
    for finding in findings:
        template = _TEMPLATES[finding.kind.name][int(rng.integers(2))]
        text = template.format(side=finding.side, zone=finding.zone, size=finding.size, Size=finding.size.capitalize())
        sentences.append(Sentence(text, finding.mask, finding.kind.name))
    names = {f.kind.name for f in findings}
    lungs = anatomy.lung_mask
    lower = zone_region(anatomy, "right", "lower") | zone_region(anatomy, "left", "lower")
    upper = zone_region(anatomy, "right", "upper") | zone_region(anatomy, "left", "upper")
    if "enlarged cardiac silhouette" not in names:
        sentences.append(Sentence("Heart size is normal.", anatomy.heart))
    lung_findings = names - {"enlarged cardiac silhouette", "pleural effusion", "pneumothorax"}
    sentences.append(Sentence("The lungs are otherwise clear." if lung_findings else "The lungs are clear.", lungs))
    if "pleural effusion" not in names:
        sentences.append(Sentence("No pleural effusion.", lower))
    if "pneumothorax" not in names:
        sentences.append(Sentence("No pneumothorax.", upper))
    return sentences


def _tokens(text: str) -> list[str]:
    return [w.strip(".,").lower() for w in text.split()] + ["."]


def _points(rng: np.random.Generator, mask: np.ndarray, count: int, jitter: float) -> np.ndarray:
    """``count`` (x, y) image positions drawn from ``mask`` with Gaussian jitter (px)."""
    flat = np.flatnonzero(mask)
    rows, cols = np.unravel_index(flat[rng.integers(len(flat), size=count)], mask.shape)
    return np.stack([cols + 0.5, rows + 0.5], axis=1) + rng.normal(0.0, jitter, (count, 2))


def simulate_reading(
    rng: np.random.Generator, anatomy: Anatomy, sentences: list[Sentence]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return ``(fixations, words)`` tables with REFLACX columns for one dictated reading."""
    height, width = anatomy.u.shape
    lungs = anatomy.lung_mask
    jitter = 0.012 * width
    full_view = _full_view(width, height)
    fixations: list[dict] = []
    words: list[dict] = []

    def look(
        t: float, until: float, target: np.ndarray, view: tuple[float, float, float, float], on_target: float
    ) -> float:
        while t < until:
            duration = float(np.clip(rng.lognormal(np.log(0.24), 0.45), 0.08, 1.2))
            mask = target if rng.random() < on_target else lungs
            x, y = _points(rng, mask, 1, jitter)[0]
            if rng.random() < 0.04:  # a glance off the image: onto the screen border or beyond
                x = float(view[0] - 0.05 * width) if rng.random() < 0.2 else float(rng.choice([-0.03, 1.03]) * width)
            fixations.append(_fixation(rng, t, t + duration, x, y, view))
            t += duration + rng.uniform(0.02, 0.06)
        return t

    t = look(0.0, rng.uniform(2.0, 4.0), lungs, full_view, 0.0)  # initial survey of the chest
    for sentence in sentences:
        view = full_view
        if sentence.finding is not None and rng.random() < 0.3:
            view = _zoomed_view(sentence.target, width, height, rng.uniform(1.5, 2.2))
        speech_start = t + rng.uniform(*GAZE_LEAD_S)
        speech_end = speech_start
        for token in _tokens(sentence.text):
            if token == ".":
                words.append({"word": ".", "timestamp_start_word": speech_end, "timestamp_end_word": speech_end})
                continue
            duration = 0.12 + 0.055 * len(token) + rng.uniform(0.0, 0.05)
            words.append(
                {"word": token, "timestamp_start_word": speech_end, "timestamp_end_word": speech_end + duration}
            )
            speech_end += duration + rng.uniform(0.02, 0.08)
        t = look(t, speech_end, sentence.target, view, 0.85)
        t = look(t, speech_end + rng.uniform(0.2, 0.7), lungs, full_view, 0.0)
    return pd.DataFrame(fixations), pd.DataFrame(words)


def _full_view(width: int, height: int) -> tuple[float, float, float, float]:
    """The image fitted to the screen by height: the shown rectangle is wider than the image."""
    shown_width = SCREEN[0] * height / SCREEN[1]
    margin = (shown_width - width) / 2
    return (-margin, 0.0, width + margin, float(height))


def _zoomed_view(target: np.ndarray, width: int, height: int, zoom: float) -> tuple[float, float, float, float]:
    rows, cols = np.nonzero(target)
    cy, cx = rows.mean(), cols.mean()
    shown_height = height / zoom
    shown_width = shown_height * SCREEN[0] / SCREEN[1]
    return (cx - shown_width / 2, cy - shown_height / 2, cx + shown_width / 2, cy + shown_height / 2)


def _fixation(rng: np.random.Generator, start: float, end: float, x: float, y: float, view: tuple[float, ...]) -> dict:
    xmin, ymin, xmax, ymax = view
    px_per_image_px = SCREEN[1] / (ymax - ymin)
    resolution = SCREEN_PX_PER_DEGREE / px_per_image_px
    return {
        "timestamp_start_fixation": round(start, 4),
        "timestamp_end_fixation": round(end, 4),
        "x_position": round(float(x), 2),
        "y_position": round(float(y), 2),
        "pupil_area_normalized": round(float(rng.normal(1.0, 0.08)), 4),
        "angular_resolution_x_pixels_per_degree": round(resolution * rng.uniform(0.97, 1.03), 4),
        "angular_resolution_y_pixels_per_degree": round(resolution * rng.uniform(0.97, 1.03), 4),
        "window_width": 65535.0,
        "window_level": 32767.5,
        "xmin_shown_from_image": round(xmin, 2),
        "ymin_shown_from_image": round(ymin, 2),
        "xmax_shown_from_image": round(xmax, 2),
        "ymax_shown_from_image": round(ymax, 2),
        "xmin_in_screen_coordinates": 0,
        "ymin_in_screen_coordinates": 0,
        "xmax_in_screen_coordinates": SCREEN[0],
        "ymax_in_screen_coordinates": SCREEN[1],
    }
