r"""Gaze heatmaps from fixations (the HVA-CN control).

REFLACX recipe: every fixation :math:`f` adds a 2-D Gaussian density centred on its position
:math:`(x_f, y_f)`, with standard deviations of one visual degree
(:math:`\sigma_{x,f}, \sigma_{y,f}` = angular resolution in pixels per degree), evaluated at the
pixel indices inside the rectangle shown on screen, and weighted by the fixation's duration
:math:`d_f`:

.. math::

    H(y, x) \propto \sum_f d_f \, \mathbb{1}[(x, y) \in R_f]\,
    \mathcal{N}(x; x_f, \sigma_{x,f}) \, \mathcal{N}(y; y_f, \sigma_{y,f}),
    \qquad \sum_{y,x} H(y, x) = 1 .

Because each term is separable, :math:`H = P_y^\top \operatorname{diag}(d) P_x` with one
row profile and one column profile per fixation: no full-image Gaussian is ever formed. Resampling
to the control resolution integrates each output cell's area exactly (fractional pixel overlaps)
on the 1-D profiles before the product, so the result equals area-resampling the full-resolution
map and keeps its sum of 1.
"""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from radgazegen.data.reflacx import SHOWN_RECT_COLUMNS, DroppedFixationsWarning, check_fixations, filter_fixations
from radgazegen.errors import check_shape

#: Seconds before a phrase starts and after it ends during which fixations count for it.
#: Gaze leads speech by about a second (the eye-voice span).
DEFAULT_WINDOW = (1.5, 0.5)
_MAX_CHUNK_ELEMENTS = 2**24
_NEGATION = re.compile(r"\b(no|not|without|negative for)\b", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class GazeBatch:
    """Fixations of several cases as padded tensors (padding has weight 0).

    All tensors are (cases, fixations); ``rects`` is (cases, fixations, 4) = xmin, ymin, xmax, ymax
    in whole pixels, already intersected with the image; ``shapes`` is (cases, 2) = height, width.
    """

    x: torch.Tensor
    y: torch.Tensor
    sigma_x: torch.Tensor
    sigma_y: torch.Tensor
    weight: torch.Tensor
    rects: torch.Tensor
    shapes: torch.Tensor


@dataclasses.dataclass(frozen=True)
class Phrase:
    """A span of dictation: text and its start / end time (s)."""

    text: str
    start: float
    end: float


def fixation_heatmap(
    fixations: pd.DataFrame, image_shape: tuple[int, int], out_shape: tuple[int, int] | None = None
) -> np.ndarray:
    """The REFLACX gaze heatmap of one reading, normalised to sum 1 (float64).

    ``fixations`` has the REFLACX columns (as returned by
    :func:`radgazegen.data.reflacx.read_fixations`); ``image_shape`` = (height, width) of the
    image; ``out_shape`` resamples to the control resolution (area-exact, sum kept at 1).
    Fixations outside the image or the shown rectangle are dropped with a warning.
    """
    return fixation_heatmaps([fixations], [image_shape], out_shape)[0].numpy()


def fixation_heatmaps(
    fixations: Sequence[pd.DataFrame],
    image_shapes: Sequence[tuple[int, int]],
    out_shape: tuple[int, int] | None,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Heatmaps of many readings at once, ``(cases, *out_shape)``, each summing to 1; CPU or GPU.

    ``out_shape=None`` keeps full resolution, which needs all images to have one shape.
    """
    sources = [
        f.attrs.get("source", "fixations" if len(fixations) == 1 else f"case {i}") for i, f in enumerate(fixations)
    ]
    kept = [
        filter_fixations(check_fixations(f, source=source), shape, source=source)
        for f, shape, source in zip(fixations, image_shapes, sources, strict=True)
    ]
    batch = reflacx_batch(kept, image_shapes, device=device, dtype=dtype)
    return _normalised(render_batch(batch, out_shape), sources)


def reflacx_batch(
    fixations: Sequence[pd.DataFrame],
    image_shapes: Sequence[tuple[int, int]],
    weights: Sequence[np.ndarray] | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
) -> GazeBatch:
    """Pack REFLACX fixation tables into a :class:`GazeBatch` (weights default to durations)."""
    columns = {
        "x": "x_position",
        "y": "y_position",
        "sigma_x": "angular_resolution_x_pixels_per_degree",
        "sigma_y": "angular_resolution_y_pixels_per_degree",
    }
    arrays = [{k: f[c].to_numpy(np.float64) for k, c in columns.items()} for f in fixations]
    for i, f in enumerate(fixations):
        arrays[i]["weight"] = (
            np.asarray(weights[i], np.float64)
            if weights is not None
            else (f["timestamp_end_fixation"] - f["timestamp_start_fixation"]).to_numpy(np.float64)
        )
        height, width = image_shapes[i]
        rect = np.round(f[list(SHOWN_RECT_COLUMNS)].to_numpy(np.float64))
        arrays[i]["rects"] = np.clip(rect, 0, [width, height, width, height])
    return _pack(arrays, image_shapes, device, dtype)


def egd_batch(
    fixations: Sequence[pd.DataFrame],
    image_shapes: Sequence[tuple[int, int]],
    sigma: float,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
) -> GazeBatch:
    """Pack EGD-CXR fixations (``X_ORIGINAL``, ``Y_ORIGINAL``, duration ``FPOGD``) with a fixed sigma (px)."""
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive number of pixels, got {sigma!r}")
    arrays = []
    for f, (height, width) in zip(fixations, image_shapes, strict=True):
        values = {c: pd.to_numeric(f[c], errors="coerce").to_numpy(np.float64) for c in ("X_ORIGINAL", "Y_ORIGINAL", "FPOGD")}
        for column, numbers in values.items():
            bad = np.flatnonzero(~np.isfinite(numbers) | ((column == "FPOGD") & (numbers < 0)))
            if bad.size:
                raise ValueError(f"EGD-CXR fixations, row {bad[0] + 1}: column {column!r} value "
                                 f"{f[column].iloc[bad[0]]!r} is not a finite (for FPOGD non-negative) number")  # fmt: skip
        x, y = values["X_ORIGINAL"], values["Y_ORIGINAL"]
        inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
        count = int(inside.sum())
        if count < len(x):
            warnings.warn(
                f"EGD-CXR fixations: dropped {len(x) - count} of {len(x)} outside the image",
                DroppedFixationsWarning,
                stacklevel=3,
            )
        arrays.append(
            {
                "x": x[inside],
                "y": y[inside],
                "sigma_x": np.full(count, float(sigma)),
                "sigma_y": np.full(count, float(sigma)),
                "weight": values["FPOGD"][inside],
                "rects": np.tile([0.0, 0.0, width, height], (count, 1)),
            }
        )
    return _pack(arrays, image_shapes, device, dtype)


def egd_heatmap(
    fixations: pd.DataFrame,
    image_shape: tuple[int, int],
    out_shape: tuple[int, int] | None = None,
    sigma: float = 100.0,
) -> np.ndarray:
    """EGD-CXR gaze heatmap: duration-weighted Gaussians of fixed ``sigma`` (image px), sum 1.

    EGD-CXR records no angular resolution, so the spread is one fixed ``sigma`` (about one visual
    degree on its 2-3k pixel images); fixations outside the image are dropped.
    """
    return _normalised(render_batch(egd_batch([fixations], [image_shape], sigma), out_shape), ["EGD fixations"])[
        0
    ].numpy()


def render_batch(batch: GazeBatch, out_shape: tuple[int, int] | None) -> torch.Tensor:
    """Unnormalised heatmaps (cases, height, width) of a batch, chunked to bound memory.

    Without ``out_shape`` every case must have the same image shape (full-resolution maps).
    """
    if out_shape is not None:
        check_shape(out_shape, "out_shape")
    shapes = batch.shapes
    if out_shape is None:
        if not bool((shapes == shapes[0]).all()):
            raise ValueError("cases with different image shapes need a common out_shape")
    cases, count = batch.x.shape
    longest = int(shapes.max())
    per_case = max(count, 1) * (longest + 1)
    step = max(1, _MAX_CHUNK_ELEMENTS // per_case)
    maps = []
    for lo in range(0, cases, step):
        part = slice(lo, lo + step)
        rows = _profiles(
            batch.y[part],
            batch.sigma_y[part],
            batch.rects[part, :, 1],
            batch.rects[part, :, 3],
            shapes[part, 0],
            None if out_shape is None else out_shape[0],
        )
        cols = _profiles(
            batch.x[part],
            batch.sigma_x[part],
            batch.rects[part, :, 0],
            batch.rects[part, :, 2],
            shapes[part, 1],
            None if out_shape is None else out_shape[1],
        )
        maps.append(torch.einsum("bfy,bf,bfx->byx", rows, batch.weight[part], cols))
    return torch.cat(maps)


def _profiles(
    center: torch.Tensor,
    sigma: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    length: torch.Tensor,
    bins: int | None,
) -> torch.Tensor:
    """Per-fixation 1-D Gaussian densities at pixel indices inside [lo, hi), area-binned to ``bins``."""
    longest = int(length.max())
    index = torch.arange(longest, device=center.device, dtype=center.dtype)
    z = (index - center[..., None]) / sigma[..., None]
    density = torch.exp(-0.5 * z * z) / (math.sqrt(2 * math.pi) * sigma[..., None])
    density = density * ((index >= lo[..., None]) & (index < hi[..., None]))
    if bins is None:
        return density
    # Area binning: output cell j covers [j L / bins, (j + 1) L / bins) of a case of length L.
    cumulative = torch.nn.functional.pad(torch.cumsum(density, dim=-1), (1, 0))
    padded = torch.nn.functional.pad(density, (0, 1))
    edges = (
        torch.arange(bins + 1, device=center.device, dtype=center.dtype)[None, :]
        * length[:, None].to(center.dtype)
        / bins
    )
    whole = torch.floor(edges).clamp(max=longest)
    fraction = (edges - whole)[:, None, :]
    whole = whole.long()[:, None, :].expand(-1, density.shape[1], -1)
    integral = torch.gather(cumulative, -1, whole) + fraction * torch.gather(padded, -1, whole)
    return integral[..., 1:] - integral[..., :-1]


def _pack(arrays: list[dict[str, np.ndarray]], image_shapes: Sequence[tuple[int, int]], device, dtype) -> GazeBatch:
    count = max((len(a["x"]) for a in arrays), default=0)
    padded = {}
    for key in ("x", "y", "sigma_x", "sigma_y", "weight"):
        fill = 1.0 if key.startswith("sigma") else 0.0
        stack = np.full((len(arrays), count), fill)
        for i, a in enumerate(arrays):
            stack[i, : len(a[key])] = a[key]
        padded[key] = torch.as_tensor(stack, dtype=dtype, device=device)
    rects = np.zeros((len(arrays), count, 4))
    for i, a in enumerate(arrays):
        rects[i, : len(a["rects"])] = a["rects"]
    shapes = torch.as_tensor(
        [check_shape(s, "image_shape") for s in image_shapes], dtype=torch.int64, device=device
    ).reshape(-1, 2)
    return GazeBatch(rects=torch.as_tensor(rects, dtype=dtype, device=device), shapes=shapes, **padded)


def _normalised(maps: torch.Tensor, sources: Sequence[str]) -> torch.Tensor:
    totals = maps.sum(dim=(-2, -1))
    empty = torch.nonzero(totals <= 0).flatten().tolist()
    if empty:
        raise ValueError(
            f"{sources[empty[0]]}: no fixation with positive duration inside the image; the heatmap is undefined"
        )
    return maps / totals[:, None, None]


def _normalised_or_zero(maps: torch.Tensor) -> np.ndarray:
    """Each map divided by its sum; all-zero maps (no gaze in the window) stay zero."""
    totals = maps.sum(dim=(-2, -1), keepdim=True)
    return torch.where(totals > 0, maps / totals.clamp(min=1e-300), maps).cpu().numpy()


def phrases(words: pd.DataFrame) -> list[Phrase]:
    """Split a ``timestamps_transcription`` table into sentences at words that are or end with '.'."""
    result, current, start = [], [], None
    for word, word_start, word_end in words[["word", "timestamp_start_word", "timestamp_end_word"]].itertuples(
        index=False
    ):
        token = str(word).strip()
        if token and token != ".":
            current.append(token.rstrip("."))
            start = word_start if start is None else start
            end = word_end
        if token.endswith(".") and current:
            result.append(Phrase(" ".join(current), float(start), float(end)))
            current, start = [], None
    if current:
        result.append(Phrase(" ".join(current), float(start), float(end)))
    return result


def window_weights(
    fixations: pd.DataFrame, start: float, end: float, window: tuple[float, float] = DEFAULT_WINDOW
) -> np.ndarray:
    """Each fixation's time (s) inside [start - before, end + after]: its weight for that phrase."""
    lo, hi = start - window[0], end + window[1]
    begin = fixations["timestamp_start_fixation"].to_numpy(np.float64)
    finish = fixations["timestamp_end_fixation"].to_numpy(np.float64)
    return np.clip(np.minimum(finish, hi) - np.maximum(begin, lo), 0.0, None)


def phrase_heatmaps(
    fixations: pd.DataFrame,
    spans: Sequence[tuple[float, float]],
    image_shape: tuple[int, int],
    out_shape: tuple[int, int] | None = None,
    window: tuple[float, float] = DEFAULT_WINDOW,
) -> np.ndarray:
    """One heatmap per time span (start, end) from the fixations around it, (spans, H, W), each sum 1.

    A span during which the reader looked at nothing inside the image gets an all-zero map.
    """
    fixations = filter_fixations(fixations, image_shape, source=fixations.attrs.get("source", "fixations"))
    weights = [window_weights(fixations, s, e, window) for s, e in spans]
    batch = reflacx_batch([fixations] * len(spans), [image_shape] * len(spans), weights)
    return _normalised_or_zero(render_batch(batch, out_shape))


def sentence_heatmaps(
    fixations: pd.DataFrame,
    words: pd.DataFrame,
    image_shape: tuple[int, int],
    out_shape: tuple[int, int] | None = None,
    window: tuple[float, float] = DEFAULT_WINDOW,
) -> tuple[list[Phrase], np.ndarray]:
    """The sentences of a dictation and one heatmap per sentence (see :func:`phrase_heatmaps`)."""
    sentences = phrases(words)
    return sentences, phrase_heatmaps(fixations, [(p.start, p.end) for p in sentences], image_shape, out_shape, window)


def mentions(sentence: str, keywords: Sequence[str]) -> bool:
    """True when an affirmative sentence names one of ``keywords`` (negated sentences do not count)."""
    text = sentence.lower()
    return any(k.lower() in text for k in keywords) and not _NEGATION.search(text)


def finding_heatmaps(
    fixations: pd.DataFrame,
    words: pd.DataFrame,
    keywords: Mapping[str, Sequence[str]],
    image_shape: tuple[int, int],
    out_shape: tuple[int, int] | None = None,
    window: tuple[float, float] = DEFAULT_WINDOW,
) -> dict[str, np.ndarray]:
    """Per finding, the heatmap of the fixations around the sentences that name it.

    ``keywords`` maps a finding name to the words that name it (e.g. ``{"nodule": ["nodule"]}``);
    findings no affirmative sentence names are left out of the result.
    """
    fixations = filter_fixations(fixations, image_shape, source=fixations.attrs.get("source", "fixations"))
    sentences = phrases(words)
    names, weights = [], []
    for name, words_for in keywords.items():
        spans = [(p.start, p.end) for p in sentences if mentions(p.text, words_for)]
        if spans:
            names.append(name)
            weights.append(np.max([window_weights(fixations, s, e, window) for s, e in spans], axis=0))
    if not names:
        return {}
    maps = render_batch(reflacx_batch([fixations] * len(names), [image_shape] * len(names), weights), out_shape)
    maps = _normalised_or_zero(maps)
    return dict(zip(names, maps, strict=True))
