r"""Classifier attribution maps and how well they agree with gaze and with the findings.

Attributions: integrated gradients (Sundararajan et al. 2017) and Grad-CAM (Selvaraju et al. 2017),
both through captum. Agreement: the saliency-benchmark metrics of Bylinskii et al. (2019, "What do
different evaluation metrics tell us about saliency models?") between a saliency map :math:`s` and
the fixations, given as points or as a map:

* NSS, the mean z-scored saliency at the :math:`n` fixated pixels :math:`F`:
  :math:`\mathrm{NSS} = \frac{1}{n} \sum_{p \in F} (s_p - \bar s) / \sigma_s` (population standard deviation);
* CC, the Pearson correlation of :math:`s` and the fixation density :math:`d`:
  :math:`\mathrm{CC} = \mathrm{cov}(s, d) / (\sigma_s \sigma_d)`;
* AUC-Judd, the area under the ROC curve whose thresholds are the saliency values at fixated pixels,
  :math:`\mathrm{TPR}(t) = |\{p \in F : s_p \ge t\}| / n` and
  :math:`\mathrm{FPR}(t) = |\{p \notin F : s_p \ge t\}| / |\bar F|`, closed by (0, 0) and (1, 1), trapezoids.

The reference implementation breaks ties between equal saliency values by adding random jitter. Here
there is no jitter: :func:`auc_judd` is the exact expectation of the reference over that jitter, so
it is deterministic. A constant saliency map carries no ranking: NSS and CC are 0 and AUC-Judd is its
expectation :math:`\tfrac12 + \tfrac{1}{2(n+1)}` (0.5 plus the reference's small-sample bias).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from numbers import Integral

import numpy as np
import pandas as pd
import torch
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam
from scipy import ndimage
from skimage.transform import resize
from torch import nn
from tqdm.auto import tqdm

DENSITY_SIGMA_SHARE = 0.025
"""Default Gaussian sigma that turns fixation points into a density, as a share of the map's long side."""


def saliency_scores(
    saliency: np.ndarray, fixations: np.ndarray, *, threshold: float = 0.0, sigma: float | None = None
) -> dict[str, float]:
    """NSS, CC and AUC-Judd (module docstring) of a saliency map against fixations.

    ``fixations`` is either (k, 2) points ``(x, y)`` in the saliency map's pixel coordinates (an array
    with two columns is always read as points), rounded to the nearest pixel, or an (H, W) fixation or
    heat map. Points: the fixated pixels are the points' pixels (a pixel fixated twice counts once) and
    the density is their indicator map blurred by a Gaussian of ``sigma`` px (default
    ``DENSITY_SIGMA_SHARE`` of the long side, zero outside the map). Map: the density is the map itself
    and the fixated pixels are those above ``threshold`` times its maximum (0 for a binary map; e.g.
    0.5 for a continuous heatmap). A saliency map of another size is first resized bilinearly to the
    map's size.
    """
    saliency = _finite_map(saliency, "saliency")
    fixations = np.asarray(fixations, dtype=np.float64)
    if fixations.ndim == 2 and fixations.shape[1] == 2:
        fixated = point_map(fixations, saliency.shape)
        blur = DENSITY_SIGMA_SHARE * max(saliency.shape) if sigma is None else sigma
        density = ndimage.gaussian_filter(fixated.astype(np.float64), blur, mode="constant")
    else:
        density = _finite_map(fixations, "fixation map")
        if not 0 <= threshold < 1:
            raise ValueError(f"threshold is a share of the fixation map's maximum in [0, 1), got {threshold}")
        if density.min() < 0:
            raise ValueError("fixation map has negative values: expected a fixation count or density map")
        fixated = density > threshold * density.max()
        if not fixated.any():
            raise ValueError("empty fixation map: no pixel is fixated (the map is all zero)")
        if saliency.shape != density.shape:
            saliency = resize(saliency, density.shape, order=1, mode="edge", anti_aliasing=False)
    return {
        "nss": nss(saliency, fixated),
        "cc": correlation(saliency, density),
        "auc_judd": auc_judd(saliency, fixated),
    }


def point_map(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Boolean map of the pixels hit by (k, 2) points ``(x, y)``, rounded to the nearest pixel centre."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"fixation points must be a (k, 2) array of (x, y), got shape {points.shape}")
    if len(points) == 0:
        raise ValueError("empty fixations: no fixation point given")
    if not np.isfinite(points).all():
        raise ValueError("fixation points must be finite")
    cols, rows = np.rint(points).astype(np.int64).T
    outside = (cols < 0) | (cols >= shape[1]) | (rows < 0) | (rows >= shape[0])
    if outside.any():
        first = points[np.argmax(outside)]
        raise ValueError(f"{outside.sum()} fixation point(s) outside the {shape[1]}x{shape[0]} (x, y) map, "
                         f"first ({first[0]:g}, {first[1]:g})")  # fmt: skip
    fixated = np.zeros(shape, bool)
    fixated[rows, cols] = True
    return fixated


def nss(saliency: np.ndarray, fixated: np.ndarray) -> float:
    r"""Normalised scanpath saliency :math:`\frac{1}{n}\sum_{p \in F} (s_p - \bar s)/\sigma_s`; 0 for a constant map."""
    saliency = np.asarray(saliency, dtype=np.float64)
    if np.ptp(saliency) == 0:
        return 0.0
    return float((saliency[fixated].mean() - saliency.mean()) / saliency.std())


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    r"""Pearson correlation :math:`\mathrm{cov}(a, b) / (\sigma_a \sigma_b)` of two maps; 0 when either is constant."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def auc_judd(saliency: np.ndarray, fixated: np.ndarray) -> float:
    r"""AUC-Judd (module docstring) averaged exactly over the reference's random tie-breaking jitter.

    For any strict ordering the reference's trapezoids sum to
    :math:`1 - \frac{1}{n}\sum_{k=1}^{n} \mathrm{FPR}_k + \frac{\mathrm{FPR}_n}{2n}`, with
    :math:`\mathrm{FPR}_k` the false-positive rate at the :math:`k`-th highest fixated pixel. Breaking
    ties uniformly at random, the first two terms average to the Mann-Whitney AUC of fixated against
    other pixels with ties counted one half, and :math:`\mathrm{FPR}_n` to
    :math:`(|\{p \notin F: s_p > s_{min}\}| + q\,r/(r + 1)) / |\bar F|`, where :math:`s_{min}` is the
    lowest fixated saliency, shared by :math:`r` fixated and :math:`q` other pixels.
    """
    saliency = np.asarray(saliency, dtype=np.float64)
    fixated = np.asarray(fixated, bool)
    positive, negative = np.sort(saliency[fixated]), np.sort(saliency[~fixated])
    n, m = len(positive), len(negative)
    if n == 0:
        raise ValueError("empty fixation map: AUC-Judd needs at least one fixated pixel")
    if m == 0:
        raise ValueError("every pixel is fixated: AUC-Judd needs pixels that are not fixated")
    below = np.searchsorted(negative, positive, side="left")
    tied = np.searchsorted(negative, positive, side="right") - below
    mann_whitney = (below.sum() + 0.5 * tied.sum()) / (n * m)
    lowest = positive[0]
    r, q = int((positive == lowest).sum()), int(tied[0])
    last_fpr = (m - below[0] - q + q * r / (r + 1)) / m
    return float(mann_whitney + last_fpr / (2 * n))


def integrated_gradients(
    model: nn.Module,
    images: torch.Tensor,
    target: int | Sequence[int],
    *,
    steps: int = 32,
    baseline: float = 0.0,
    internal_batch_size: int | None = None,
) -> np.ndarray:
    r"""(n, S, S) absolute integrated gradients of the ``target`` logit(s), summed over channels.

    :math:`\mathrm{IG}_i(x) = (x_i - x'_i) \int_0^1 \partial f(x' + \alpha (x - x')) / \partial x_i \, d\alpha`
    with the constant baseline :math:`x' = ` ``baseline``, approximated with ``steps`` Gauss-Legendre
    points. ``model`` maps (n, 1, S, S) images in [0, 1] to (n, C) logits; it runs in eval mode and
    its parameters' ``.grad`` are left untouched.
    """
    images = _check_images(images, model)
    targets = _targets(target, len(images))
    with _evaluating(model):
        attribution = IntegratedGradients(model).attribute(
            images, baselines=baseline, target=targets, n_steps=steps, internal_batch_size=internal_batch_size
        )
    return attribution.detach().abs().sum(1).cpu().numpy()


def grad_cam(model: nn.Module, layer: nn.Module, images: torch.Tensor, target: int | Sequence[int]) -> np.ndarray:
    r"""(n, S, S) Grad-CAM of the ``target`` logit(s) at ``layer``, upsampled bilinearly to the image size.

    :math:`\mathrm{ReLU}(\sum_c \alpha_c A_c)` with :math:`\alpha_c` the spatial mean of
    :math:`\partial y / \partial A_c` over the layer's (n, C, h, w) output :math:`A`; the upsampled map
    is ReLU'd again. The model runs in eval mode; its parameters' ``.grad`` are left untouched.
    """
    images = _check_images(images, model)
    targets = _targets(target, len(images))
    with _evaluating(model):
        cam = LayerGradCam(model, layer).attribute(images, target=targets, relu_attributions=True)
    if cam.ndim != 4:
        raise ValueError(f"Grad-CAM needs a convolutional layer with (n, C, h, w) output, got {tuple(cam.shape)}")
    upsampled = LayerAttribution.interpolate(cam.detach(), tuple(images.shape[-2:]), interpolate_mode="bilinear")
    return torch.relu(upsampled).sum(1).cpu().numpy()


def attribution_agreement(
    attributions: np.ndarray,
    gaze_maps: np.ndarray,
    finding_masks: np.ndarray | None = None,
    *,
    gaze_threshold: float = 0.5,
    progress: bool = False,
) -> pd.DataFrame:
    """Per image, :func:`saliency_scores` of its attribution against its gaze heatmap and its finding mask.

    Columns ``image, reference, nss, cc, auc_judd``; ``reference`` is ``"gaze"`` (fixated pixels: the
    heatmap above ``gaze_threshold`` times its maximum) or ``"finding"`` (the binary mask). Images whose
    finding mask is empty (normal cases) get no finding row.
    """
    attributions, gaze_maps = np.asarray(attributions), np.asarray(gaze_maps)
    references = {"gaze": gaze_maps} if finding_masks is None else {"gaze": gaze_maps, "finding": finding_masks}
    for name, maps in {"attributions": attributions, **references}.items():
        if np.ndim(maps) != 3 or len(maps) != len(attributions):
            raise ValueError(f"{name} must be (n, H, W) with n = {len(attributions)} images, got {np.shape(maps)}")
    rows = []
    for k in tqdm(range(len(attributions)), desc="attribution agreement", unit="image", disable=not progress):
        for reference, maps in references.items():
            if reference == "finding" and not np.any(maps[k]):
                continue
            share = gaze_threshold if reference == "gaze" else 0.0
            try:
                scores = saliency_scores(attributions[k], np.asarray(maps[k], dtype=np.float64), threshold=share)
            except ValueError as error:
                raise ValueError(f"image {k}, {reference}: {error}") from error
            rows.append({"image": k, "reference": reference, **scores})
    return pd.DataFrame(rows, columns=["image", "reference", "nss", "cc", "auc_judd"])


def _finite_map(values: np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"{name} must be a non-empty 2-D map, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"{name} has non-finite values")
    return values


def _check_images(images: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """A detached float copy of (n, 1, S, S) ``images`` on the model's device."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"images must be a (n, 1, S, S) tensor, got {getattr(images, 'shape', type(images))}")
    device = next(model.parameters(), images).device
    return images.detach().to(device=device, dtype=torch.float32, copy=True)


def _targets(target: int | Sequence[int], n: int) -> int | list[int]:
    if isinstance(target, Integral):
        return int(target)
    targets = [int(t) for t in target]
    if len(targets) != n:
        raise ValueError(f"{len(targets)} targets for {n} images")
    return targets


@contextlib.contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    """Run ``model`` in eval mode, then restore its mode."""
    training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(training)
