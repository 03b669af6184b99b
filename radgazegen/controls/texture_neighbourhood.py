r"""Neighbourhood features of each voxel's kernel: GLDM and NGTDM, as pyradiomics defines them.

Every kernel voxel :math:`u` with grey level :math:`i_u` looks at its 8 in-plane neighbours at
distance 1 that lie in the same kernel (and mask). GLDM: its dependence :math:`d_u` is the number of
those neighbours with :math:`|i_u - i_w| \le \alpha` (:math:`\alpha = 0`), and :math:`j_u = d_u + 1`.
NGTDM: :math:`s_u = |i_u - \bar A_u|` with :math:`\bar A_u` the neighbours' mean level (0 without
neighbours). Per kernel, :math:`N_z` counts its voxels, :math:`p_g(i)`, :math:`p_d(j)`, :math:`p(i, j)`
are the shares of voxels with level :math:`i`, dependence :math:`j`, both; for NGTDM :math:`n_i`
voxels have level :math:`i`, :math:`p_i = n_i / N_z`, :math:`s_i = \sum_{i_u = i} s_u`, and
:math:`N_{g,p}` levels are present. Sums over :math:`i, j` run over the levels present.
"""

from __future__ import annotations

from functools import cached_property

import torch

from radgazegen.controls.multiset import ItemLists, tally
from radgazegen.controls.texture_feature_set import FeatureSet
from radgazegen.controls.texture_firstorder import EPS

NEIGHBOURS = ((0, 1), (1, 0), (1, 1), (1, -1), (0, -1), (-1, 0), (-1, -1), (-1, 1))
"""The 8 in-plane (row, column) neighbour offsets."""


def shift(grid: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``out[..., y, x] = grid[..., y + dy, x + dx]``, zero outside the grid (last two axes)."""
    height, width = grid.shape[-2:]
    padded = torch.nn.functional.pad(grid, (abs(dx), abs(dx), abs(dy), abs(dy)))
    return padded[..., abs(dy) + dy : abs(dy) + dy + height, abs(dx) + dx : abs(dx) + dx + width]


class NeighbourhoodWindows(ItemLists):
    """Per-voxel dependence and neighbourhood difference inside each kernel of a batch.

    ``levels`` is ``(voxels, height, width)``: the kernels' grey levels, 0 where a cell is not part of it.
    """

    def __init__(self, levels: torch.Tensor, max_level: int, dtype: torch.dtype, alpha: int = 0) -> None:
        own = levels > 0
        dependence = torch.zeros_like(levels)
        neighbours = torch.zeros_like(levels)
        total = torch.zeros_like(levels)
        for dy, dx in NEIGHBOURS:
            other = shift(levels, dy, dx)
            present = own & (other > 0)
            dependence += present & ((levels - other).abs() <= alpha)
            neighbours += present
            total += torch.where(present, other, 0)
        super().__init__(own.flatten(1), dtype)
        self.levels = levels.flatten(1)
        self.max_level = max_level
        self.i = self.levels.to(dtype)
        self.j = (dependence.flatten(1) + 1).to(dtype)
        self.dependence = dependence.flatten(1)
        mean = total.flatten(1).to(dtype) / torch.clamp(neighbours.flatten(1), min=1).to(dtype)
        self.difference = torch.where(neighbours.flatten(1) > 0, (self.i - mean).abs(), 0)

    @cached_property
    def local(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per kernel and present level (zero-padded): level :math:`i`, :math:`p_i`, :math:`s_i`, presence."""
        ranks, size = tally(self.levels, self.valid, self.max_level + 1).ranks
        shape = (self.levels.shape[0], size)
        zeros = torch.zeros(shape, dtype=self.dtype, device=self.levels.device)
        level = zeros.scatter_reduce(1, ranks, torch.where(self.valid, self.i, 0), "amax")
        n = zeros.clone().scatter_add_(1, ranks, self.present)
        s = zeros.clone().scatter_add_(1, ranks, torch.where(self.valid, self.difference, 0))
        return level, n / self.count[:, None], s, n > 0


def _pairs(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return values[:, :, None], values[:, None, :]


GLDM: FeatureSet[NeighbourhoodWindows] = FeatureSet("gldm")
"""The GLDM features, registered by the functions below."""
NGTDM: FeatureSet[NeighbourhoodWindows] = FeatureSet("ngtdm")
"""The NGTDM features, registered by the functions below."""


@GLDM.feature
def small_dependence_emphasis(w: NeighbourhoodWindows) -> torch.Tensor:
    r""":math:`\sum_j p_d(j)/j^2`."""
    return w.mean(1 / w.j**2)


@GLDM.feature
def large_dependence_emphasis(w: NeighbourhoodWindows) -> torch.Tensor:
    r""":math:`\sum_j p_d(j)\,j^2`."""
    return w.mean(w.j**2)


@GLDM.feature
def gray_level_non_uniformity(w: NeighbourhoodWindows) -> torch.Tensor:
    r""":math:`\frac{1}{N_z}\sum_i (N_z p_g(i))^2`."""
    return w.mean(w.share(w.levels, w.max_level + 1)) * w.count


@GLDM.feature
def dependence_non_uniformity(w: NeighbourhoodWindows) -> torch.Tensor:
    r""":math:`\frac{1}{N_z}\sum_j (N_z p_d(j))^2`."""
    return w.mean(w.share(w.dependence, len(NEIGHBOURS) + 1)) * w.count


@GLDM.feature
def dependence_non_uniformity_normalized(w: NeighbourhoodWindows) -> torch.Tensor:
    r""":math:`\sum_j p_d(j)^2`."""
    return w.mean(w.share(w.dependence, len(NEIGHBOURS) + 1))


@GLDM.feature
def gray_level_variance(w: NeighbourhoodWindows) -> torch.Tensor:
    r""":math:`\sum_i p_g(i)(i-\mu)^2`, :math:`\mu=\sum_i p_g(i)\,i`."""
    return w.mean((w.i - w.mean(w.i)[:, None]) ** 2)


@GLDM.feature
def dependence_variance(w: NeighbourhoodWindows) -> torch.Tensor:
    r""":math:`\sum_j p_d(j)(j-\mu)^2`, :math:`\mu=\sum_j p_d(j)\,j`."""
    return w.mean((w.j - w.mean(w.j)[:, None]) ** 2)


@GLDM.feature
def dependence_entropy(w: NeighbourhoodWindows) -> torch.Tensor:
    r""":math:`-\sum_{i,j} p(i,j)\log_2(p(i,j)+\epsilon)`."""
    keys = w.levels * (len(NEIGHBOURS) + 1) + w.dependence
    return -w.mean(torch.log2(w.share(keys, (w.max_level + 1) * (len(NEIGHBOURS) + 1)) + EPS))


def _safe_level(w: NeighbourhoodWindows) -> torch.Tensor:
    return torch.where(w.valid, w.i, 1)


@GLDM.feature
def low_gray_level_emphasis(w: NeighbourhoodWindows) -> torch.Tensor:
    r""":math:`\sum_i p_g(i)/i^2`."""
    return w.mean(1 / _safe_level(w) ** 2)


@GLDM.feature
def high_gray_level_emphasis(w: NeighbourhoodWindows) -> torch.Tensor:
    r""":math:`\sum_i p_g(i)\,i^2`."""
    return w.mean(w.i**2)


@GLDM.feature
def small_dependence_low_gray_level_emphasis(w: NeighbourhoodWindows) -> torch.Tensor:
    r""":math:`\sum_{i,j} p(i,j)/(i^2 j^2)`."""
    return w.mean(1 / (_safe_level(w) ** 2 * w.j**2))


@GLDM.feature
def small_dependence_high_gray_level_emphasis(w: NeighbourhoodWindows) -> torch.Tensor:
    r""":math:`\sum_{i,j} p(i,j)\,i^2/j^2`."""
    return w.mean(w.i**2 / w.j**2)


@GLDM.feature
def large_dependence_low_gray_level_emphasis(w: NeighbourhoodWindows) -> torch.Tensor:
    r""":math:`\sum_{i,j} p(i,j)\,j^2/i^2`."""
    return w.mean(w.j**2 / _safe_level(w) ** 2)


@GLDM.feature
def large_dependence_high_gray_level_emphasis(w: NeighbourhoodWindows) -> torch.Tensor:
    r""":math:`\sum_{i,j} p(i,j)\,i^2 j^2`."""
    return w.mean(w.i**2 * w.j**2)


@NGTDM.feature
def coarseness(w: NeighbourhoodWindows) -> torch.Tensor:
    r""":math:`1/\sum_i p_i s_i`; :math:`10^6` where the sum is 0."""
    _, p, s, _ = w.local
    total = (p * s).sum(-1)
    return torch.where(total != 0, 1 / torch.where(total != 0, total, 1), 1e6)


@NGTDM.feature(name="Contrast")
def ngtdm_contrast(w: NeighbourhoodWindows) -> torch.Tensor:
    r""":math:`\frac{\sum_{i,j}p_ip_j(i-j)^2}{N_{g,p}(N_{g,p}-1)}\,\frac{\sum_i s_i}{N_z}`; 0 with one level."""
    level, p, s, present = w.local
    (li, lj), (pi, pj) = _pairs(level), _pairs(p)
    spread = (pi * pj * (li - lj) ** 2).sum((1, 2))
    levels = present.sum(-1).to(w.dtype)
    div = levels * (levels - 1)
    value = spread * s.sum(-1) / w.count / torch.where(div != 0, div, 1)
    return torch.where(div != 0, value, 0)


@NGTDM.feature
def busyness(w: NeighbourhoodWindows) -> torch.Tensor:
    r""":math:`\frac{\sum_i p_i s_i}{\sum_{i,j}|i p_i - j p_j|}`; 0 where the denominator is 0."""
    level, p, s, present = w.local
    weighted = level * p
    a, b = _pairs(weighted)
    both = present[:, :, None] & present[:, None, :]
    spread = torch.where(both, (a - b).abs(), 0).sum((1, 2))
    return torch.where(spread != 0, (p * s).sum(-1) / torch.where(spread != 0, spread, 1), 0)


@NGTDM.feature
def complexity(w: NeighbourhoodWindows) -> torch.Tensor:
    r""":math:`\frac{1}{N_z}\sum_{i,j}|i-j|\frac{p_is_i+p_js_j}{p_i+p_j}`."""
    level, p, s, present = w.local
    (li, lj), (pi, pj), (si, sj) = _pairs(level), _pairs(p), _pairs(p * s)
    both = present[:, :, None] & present[:, None, :]
    divisor = torch.where(both, pi + pj, 1)
    return torch.where(both, (li - lj).abs() * (si + sj) / divisor, 0).sum((1, 2)) / w.count


@NGTDM.feature
def strength(w: NeighbourhoodWindows) -> torch.Tensor:
    r""":math:`\frac{\sum_{i,j}(p_i+p_j)(i-j)^2}{\sum_i s_i}`; 0 where the denominator is 0."""
    level, p, s, present = w.local
    (li, lj), (pi, pj) = _pairs(level), _pairs(p)
    both = present[:, :, None] & present[:, None, :]
    numerator = torch.where(both, (pi + pj) * (li - lj) ** 2, 0).sum((1, 2))
    total = s.sum(-1)
    return torch.where(total != 0, numerator / torch.where(total != 0, total, 1), 0)


