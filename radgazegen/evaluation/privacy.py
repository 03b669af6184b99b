r"""Re-identification and memorization: does a generated image redraw a patient whose data conditioned it?

A sample :math:`x` was conditioned by the data of its *contributors*: the reading whose report is its prompt and
whose gaze (and, unless the configuration says otherwise, anatomy) steered it, and any donor that lent its anatomy.
The *gallery* is the real training images :math:`g_1, \dots, g_G`, each of one patient. In a similarity space
:math:`s(x, g)` (higher: more alike) with distance :math:`d = 1 - s`:

* **re-identified (top-k)**: an image of a contributor's patient is among the :math:`k` gallery images most similar to
  :math:`x` (:func:`reidentification`). A sample that carries nothing of its contributors hits by chance with
  probability :math:`1 - \binom{G-m}{k} / \binom{G}{k}`, :math:`m` the contributors' gallery images (:func:`chance`);
* **memorized**: :math:`x` lies nearer its nearest gallery image than 95% of held-out real images lie to theirs,
  :math:`d_\mathrm{nn}(x) < q_{0.05}\{d_\mathrm{nn}(h)\}` over held-out real images :math:`h` (never in the gallery;
  :func:`memorized`). A held-out image falls below the quantile of the others 5% of the time (:func:`own_share`);
* **source margin**: :math:`d(x, C) / d(x, \bar C)`, the distance to the nearest image of a contributor over that to
  the nearest image of any other patient: below 1 when the sample is nearer its contributors than anyone else.

The spaces (:func:`pixel_similarity`: Pearson correlation of the pixels; :func:`cosine_similarity` of a feature
network's vectors; a re-identification network's one-patient probability) are chosen by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb

import numpy as np
import pandas as pd

TOP_K = 5
"""The re-identification rank reported beside top-1 (CheXGenBench and re-identification papers report top-1 / top-5)."""
QUANTILE = 0.05
"""A sample is *memorized* when it lies nearer the gallery than this quantile of the held-out real images."""


def pixel_similarity(a: np.ndarray, b: np.ndarray, *, block: int = 64) -> np.ndarray:
    r"""Pearson correlation :math:`r(a_i, b_j)` of the pixels of every pair of images ``(n_a, H, W)`` x ``(n_b, H, W)``.

    A constant image correlates 0 with everything. Computed ``block`` images of each set at a time (float64), so
    memory stays at a few blocks of images whatever the sets' sizes.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"images differ in size: {a.shape[1:]} and {b.shape[1:]}")
    out = np.empty((len(a), len(b)))
    for i in range(0, len(a), block):
        za = _standardised(np.asarray(a[i : i + block], np.float64).reshape(-1, int(np.prod(a.shape[1:]))))
        for j in range(0, len(b), block):
            zb = _standardised(np.asarray(b[j : j + block], np.float64).reshape(-1, int(np.prod(b.shape[1:]))))
            out[i : i + block, j : j + block] = za @ zb.T
    return out


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    r""":math:`\cos(a_i, b_j)` of every pair of feature vectors ``(n_a, d)`` x ``(n_b, d)`` (a zero vector: 0)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be (n, d) of one width, got {a.shape} and {b.shape}")
    return _unit(a) @ _unit(b).T


def _standardised(rows: np.ndarray) -> np.ndarray:
    centred = rows - rows.mean(axis=1, keepdims=True)
    return _unit(centred)


def _unit(rows: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.divide(rows, norm, out=np.zeros_like(rows), where=norm > 0)


def chance(gallery: int, matches: int, k: int = 1) -> float:
    r""":math:`1 - \binom{G-m}{k} / \binom{G}{k}`: the probability that ``k`` gallery images drawn at random include one
    of the ``matches`` images of a contributor."""
    if not 0 <= matches <= gallery or k < 1:
        raise ValueError(f"need 0 <= matches <= gallery and k >= 1, got {matches}, {gallery}, {k}")
    k = min(k, gallery)
    return 1.0 - comb(gallery - matches, k) / comb(gallery, k)


def reidentification(
    similarity: np.ndarray, gallery_patients: Sequence[str], contributors: Sequence[set[str]], *, k: int = TOP_K
) -> pd.DataFrame:
    """Per sample (rows of ``similarity``, ``(n, G)``): whether a contributor's patient is re-identified.

    ``gallery_patients[j]``: the patient of gallery image ``j``; ``contributors[i]``: the patients whose data
    conditioned sample ``i``. Columns: ``top-1`` and ``top-{k}`` (0/1), ``rank`` (of the first contributor image,
    1 = nearest; ``inf`` when the gallery has none), ``contributor distance`` / ``other distance`` (to the nearest
    image of a contributor / of anyone else), ``margin`` (their ratio), ``nearest`` (gallery index of the nearest
    image), ``chance top-1`` and ``chance top-{k}`` (:func:`chance`).
    """
    similarity = np.asarray(similarity, np.float64)
    patients = np.asarray(list(gallery_patients), dtype=object)
    if similarity.ndim != 2 or similarity.shape != (len(contributors), len(patients)):
        raise ValueError(f"similarity must be (samples, gallery) = ({len(contributors)}, {len(patients)}), "
                         f"got {similarity.shape}")  # fmt: skip
    if not np.isfinite(similarity).all():
        raise ValueError("similarity has non-finite values")
    distance = 1.0 - similarity
    order = np.argsort(-similarity, axis=1, kind="stable")
    rows = []
    for i, who in enumerate(contributors):
        own = np.isin(patients, list(who))
        hits = own[order[i]]
        rank = float(np.argmax(hits) + 1) if hits.any() else float("inf")
        near_own = distance[i, own].min() if own.any() else float("nan")
        near_other = distance[i, ~own].min() if (~own).any() else float("nan")
        with np.errstate(divide="ignore", invalid="ignore"):
            margin = near_own / near_other if near_other > 0 else float("nan")
        rows.append({"top-1": float(rank <= 1), f"top-{k}": float(rank <= k), "rank": rank,
                     "contributor distance": near_own, "other distance": near_other, "margin": margin,
                     "nearest": int(order[i, 0]), "chance top-1": chance(len(patients), int(own.sum()), 1),
                     f"chance top-{k}": chance(len(patients), int(own.sum()), k)})  # fmt: skip
    return pd.DataFrame(rows)


def nearest_distance(similarity: np.ndarray) -> np.ndarray:
    """Each row's distance ``1 - max similarity`` to its nearest gallery image."""
    similarity = np.asarray(similarity, np.float64)
    if similarity.ndim != 2 or similarity.shape[1] == 0:
        raise ValueError(f"similarity must be (n, G) with G >= 1, got {similarity.shape}")
    return 1.0 - similarity.max(axis=1)


def memorized(sample_distance: np.ndarray, held_out_distance: np.ndarray, quantile: float = QUANTILE) -> np.ndarray:
    r"""0/1 per sample: :math:`d_\mathrm{nn}(x) < q\{d_\mathrm{nn}(h)\}`, the held-out images' ``quantile``."""
    held = np.asarray(held_out_distance, np.float64)
    if len(held) < 2 or not 0 < quantile < 1:
        raise ValueError(f"need at least 2 held-out distances and a quantile in (0, 1), got {len(held)}, {quantile}")
    return (np.asarray(sample_distance, np.float64) < np.quantile(held, quantile)).astype(float)


def own_share(held_out_distance: np.ndarray, quantile: float = QUANTILE) -> np.ndarray:
    """0/1 per held-out image: whether it lies below the ``quantile`` of the *other* held-out images' distances
    (leave-one-out), the rate a memorization share is compared with (about ``quantile``)."""
    held = np.asarray(held_out_distance, np.float64)
    if len(held) < 3:
        raise ValueError(f"need at least 3 held-out distances, got {len(held)}")
    return np.array([float(held[i] < np.quantile(np.delete(held, i), quantile)) for i in range(len(held))])
