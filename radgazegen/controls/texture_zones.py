r"""Run-length (GLRLM) and size-zone (GLSZM) features of each voxel's kernel, as pyradiomics defines them.

Inside a kernel (and the mask), a *run* is a maximal line of equal grey levels along one of the four
in-plane directions and a *zone* a maximal 8-connected region of equal grey levels. Both give a list of
objects with a grey level :math:`i` and a size :math:`j` (run length, zone area) from which the same
sixteen features follow. With :math:`N` objects covering :math:`N_p` voxels, :math:`p_g(i)`,
:math:`p_s(j)` and :math:`p(i, j)` the numbers of objects with level :math:`i`, size :math:`j`, both:

=============================== ====================================================
emphasis of small / large sizes :math:`\sum_j p_s(j)/j^2 / N`, :math:`\sum_j p_s(j)j^2 / N`
(normalised) non-uniformity     :math:`\sum_i p_g(i)^2 / N` (:math:`/N^2`), same for :math:`p_s`
percentage                      :math:`N / N_p`
variances                       of :math:`i` and of :math:`j` over the objects
entropy                         :math:`-\sum_{i,j} \frac{p(i,j)}{N}\log_2(\frac{p(i,j)}{N}+\epsilon)`
grey-level emphases             means over the objects of :math:`i^{-2}`, :math:`i^2`, :math:`i^{-2}j^{-2}`,
                                :math:`i^2j^{-2}`, :math:`j^2i^{-2}`, :math:`i^2j^2`
=============================== ====================================================

GLRLM features are computed per direction and averaged over the directions that have runs; GLSZM
has one zone list per kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property

import torch

from radgazegen.controls.multiset import ItemLists, tally
from radgazegen.controls.texture_feature_set import FeatureSet
from radgazegen.controls.texture_firstorder import EPS
from radgazegen.controls.texture_glcm import ANGLES
from radgazegen.controls.texture_neighbourhood import NEIGHBOURS, shift


class Objects(ItemLists):
    """Objects (runs or zones) as ``(..., cells)`` lists: grey level, size, and which cells start one."""

    def __init__(self, level: torch.Tensor, size: torch.Tensor, is_object: torch.Tensor, max_level: int,
                 max_size: int, dtype: torch.dtype) -> None:  # fmt: skip
        super().__init__(is_object, dtype)
        self.level, self.size = level, size
        self.max_level, self.max_size = max_level, max_size
        self.i = torch.where(is_object, level, 1).to(dtype)
        self.j = torch.where(is_object, size, 1).to(dtype)

    @cached_property
    def features(self) -> dict[str, torch.Tensor]:
        """The sixteen features under their GLSZM-style short names (SE, LE, GLN, ... LHGLE)."""
        level_share = self.share(self.level, self.max_level + 1)
        size_share = self.share(self.size, self.max_size + 1)
        joint = self.share(self.level * (self.max_size + 1) + self.size, (self.max_level + 1) * (self.max_size + 1))
        i2, j2 = self.i**2, self.j**2
        return {
            "SE": self.mean(1 / j2),
            "LE": self.mean(j2),
            "GLN": self.mean(level_share) * self.count,
            "GLNN": self.mean(level_share),
            "SN": self.mean(size_share) * self.count,
            "SNN": self.mean(size_share),
            "P": self.count / (self.j * self.present).sum(-1),
            "GLV": self.mean((self.i - self.mean(self.i)[..., None]) ** 2),
            "SV": self.mean((self.j - self.mean(self.j)[..., None]) ** 2),
            "E": -self.mean(torch.log2(joint + EPS)),
            "LGLE": self.mean(1 / i2),
            "HGLE": self.mean(i2),
            "SLGLE": self.mean(1 / (i2 * j2)),
            "SHGLE": self.mean(i2 / j2),
            "LLGLE": self.mean(j2 / i2),
            "LHGLE": self.mean(i2 * j2),
        }


def runs(levels: torch.Tensor, max_level: int, dtype: torch.dtype) -> Objects:
    """Runs along each in-plane direction of ``(voxels, height, width)`` kernels: lists ``(voxels, angles, cells)``."""
    side = max(levels.shape[-2:])
    starts, lengths = [], []
    for dy, dx in ANGLES:
        previous = shift(levels, -dy, -dx)
        valid = levels > 0
        start = valid & (previous != levels)
        continues = valid & (previous == levels)
        length = start.long()
        chain = start.clone()
        for step in range(1, side):
            chain = chain & shift(continues, step * dy, step * dx)
            length = length + chain
        starts.append(start.flatten(1))
        lengths.append(length.flatten(1))
    start, length = torch.stack(starts, 1), torch.stack(lengths, 1)
    level = levels.flatten(1)[:, None, :].expand_as(start)
    return Objects(level, length, start, max_level, side, dtype)


def zones(levels: torch.Tensor, max_level: int, dtype: torch.dtype) -> Objects:
    """8-connected zones of equal grey level in ``(voxels, height, width)`` kernels: lists ``(voxels, cells)``."""
    height, width = levels.shape[-2:]
    cells = height * width
    valid = levels > 0
    index = torch.arange(1, cells + 1, device=levels.device).reshape(height, width).expand_as(levels)
    label = torch.where(valid, index, cells + 1)
    while True:
        smallest = label
        for dy, dx in NEIGHBOURS:
            neighbour = shift(label, dy, dx)
            same = valid & (shift(levels, dy, dx) == levels)
            smallest = torch.where(same, torch.minimum(smallest, neighbour), smallest)
        if torch.equal(smallest, label):
            break
        label = smallest
    flat_label, flat_valid = label.flatten(1), valid.flatten(1)
    root = flat_valid & (flat_label == index.flatten(1))
    size = tally(torch.where(flat_valid, flat_label, 0), flat_valid, cells + 2).element_counts.long()
    return Objects(levels.flatten(1), size, root, max_level, cells, dtype)


def _direction_mean(short: str) -> Callable[[Objects], torch.Tensor]:
    def feature(objects: Objects) -> torch.Tensor:
        return torch.nanmean(objects.features[short], dim=-1)  # directions without runs are nan

    return feature


def _single(short: str) -> Callable[[Objects], torch.Tensor]:
    def feature(objects: Objects) -> torch.Tensor:
        return objects.features[short]

    return feature


ZONE_FEATURES = (
    # key of Objects.features, GLRLM name, GLSZM name (pyradiomics' order)
    ("SE", "ShortRunEmphasis", "SmallAreaEmphasis"),
    ("LE", "LongRunEmphasis", "LargeAreaEmphasis"),
    ("GLN", "GrayLevelNonUniformity", "GrayLevelNonUniformity"),
    ("GLNN", "GrayLevelNonUniformityNormalized", "GrayLevelNonUniformityNormalized"),
    ("SN", "RunLengthNonUniformity", "SizeZoneNonUniformity"),
    ("SNN", "RunLengthNonUniformityNormalized", "SizeZoneNonUniformityNormalized"),
    ("P", "RunPercentage", "ZonePercentage"),
    ("GLV", "GrayLevelVariance", "GrayLevelVariance"),
    ("SV", "RunVariance", "ZoneVariance"),
    ("E", "RunEntropy", "ZoneEntropy"),
    ("LGLE", "LowGrayLevelRunEmphasis", "LowGrayLevelZoneEmphasis"),
    ("HGLE", "HighGrayLevelRunEmphasis", "HighGrayLevelZoneEmphasis"),
    ("SLGLE", "ShortRunLowGrayLevelEmphasis", "SmallAreaLowGrayLevelEmphasis"),
    ("SHGLE", "ShortRunHighGrayLevelEmphasis", "SmallAreaHighGrayLevelEmphasis"),
    ("LLGLE", "LongRunLowGrayLevelEmphasis", "LargeAreaLowGrayLevelEmphasis"),
    ("LHGLE", "LongRunHighGrayLevelEmphasis", "LargeAreaHighGrayLevelEmphasis"),
)
"""The sixteen features both classes share: one computation (:meth:`Objects.features`), two pyradiomics names."""
GLRLM: FeatureSet[Objects] = FeatureSet("glrlm")
"""GLRLM features: each direction's value, averaged over the directions that have runs."""
GLSZM: FeatureSet[Objects] = FeatureSet("glszm")
"""GLSZM features: one zone list per kernel."""
for _key, _run_name, _zone_name in ZONE_FEATURES:
    GLRLM.feature(_direction_mean(_key), name=_run_name)
    GLSZM.feature(_single(_key), name=_zone_name)
