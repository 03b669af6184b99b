r"""First-order features of the intensities in each voxel's kernel, as pyradiomics defines them.

Notation (per voxel): :math:`X` the :math:`N_p` original intensities in the kernel (clipped at the
border, restricted to the mask when the kernel is masked), :math:`\bar X` their mean, :math:`c` the
``voxelArrayShift`` (0), :math:`p(i)` the share of kernel voxels with discretised grey level :math:`i`,
:math:`P_{q}` the :math:`q`-th percentile (linear interpolation), :math:`\epsilon` the float64 spacing
at 1. Windows are rows of a ``(voxels, kernel)`` tensor with ``nan`` for the cells that are not part
of the kernel.
"""

from __future__ import annotations

from functools import cached_property

import torch

from radgazegen.controls.multiset import tally
from radgazegen.controls.texture_feature_set import FeatureSet

EPS = 2.220446049250313e-16  # numpy.spacing(1), as pyradiomics uses


class FirstOrderWindows:
    """Intermediate quantities shared by the first-order features of a batch of kernels."""

    def __init__(self, values: torch.Tensor, levels: torch.Tensor, max_level: int) -> None:
        self.values = values
        self.levels = levels
        self.max_level = max_level
        self.valid = ~torch.isnan(values)
        self.count = self.valid.sum(1).to(values.dtype)
        self.zeroed = torch.where(self.valid, values, torch.zeros_like(values))

    @cached_property
    def mean(self) -> torch.Tensor:
        return self.zeroed.sum(1) / self.count

    @cached_property
    def ordered(self) -> torch.Tensor:
        return torch.sort(torch.where(self.valid, self.values, torch.full_like(self.values, torch.inf)), dim=1)[0]

    @cached_property
    def flat(self) -> torch.Tensor:
        return self.ordered[:, 0] == self.ordered.gather(1, (self.count.long() - 1)[:, None])[:, 0]

    def percentile(self, q: float) -> torch.Tensor:
        position = (self.count - 1) * (q / 100.0)
        low = torch.floor(position)
        high = torch.minimum(low + 1, self.count - 1)
        below = self.ordered.gather(1, low.long()[:, None])[:, 0]
        above = self.ordered.gather(1, high.long()[:, None])[:, 0]
        return below + (above - below) * (position - low)

    @cached_property
    def _centred(self) -> tuple[torch.Tensor, torch.Tensor]:
        r""":math:`X_k - \bar X` (0 off the kernel) and its square."""
        centred = torch.where(self.valid, self.values - self.mean[:, None], torch.zeros_like(self.values))
        return centred, centred * centred

    def central_moment(self, order: int) -> torch.Tensor:
        r""":math:`\mu_n = \frac{1}{N_p}\sum_k (X_k - \bar X)^n` for ``order`` 2, 3 or 4."""
        centred, squared = self._centred
        power = {2: squared, 3: squared * centred, 4: squared * squared}[order]
        return power.sum(1) / self.count

    @cached_property
    def probabilities(self) -> torch.Tensor:
        """:math:`p(i)` for the grey levels present in each kernel (zero-padded)."""
        return (
            tally(self.levels, self.levels > 0, self.max_level + 1).counts.to(self.values.dtype) / self.count[:, None]
        )


FEATURES: FeatureSet[FirstOrderWindows] = FeatureSet("firstorder")
"""The first-order features, registered by the functions below."""


@FEATURES.feature
def energy(w: FirstOrderWindows) -> torch.Tensor:
    r""":math:`\sum_k (X_k + c)^2`."""
    return (w.zeroed**2).sum(1)


@FEATURES.feature
def total_energy(w: FirstOrderWindows) -> torch.Tensor:
    r""":math:`V_{voxel}\sum_k (X_k + c)^2` with unit pixel spacing, so equal to Energy."""
    return energy(w)


@FEATURES.feature
def entropy(w: FirstOrderWindows) -> torch.Tensor:
    r""":math:`-\sum_i p(i)\log_2(p(i) + \epsilon)`."""
    p = w.probabilities
    return -(p * torch.log2(p + EPS)).sum(1)


@FEATURES.feature
def minimum(w: FirstOrderWindows) -> torch.Tensor:
    r""":math:`\min X`."""
    return w.ordered[:, 0]


@FEATURES.feature(name="10Percentile")
def percentile_10(w: FirstOrderWindows) -> torch.Tensor:
    r""":math:`P_{10}`."""
    return w.percentile(10)


@FEATURES.feature(name="90Percentile")
def percentile_90(w: FirstOrderWindows) -> torch.Tensor:
    r""":math:`P_{90}`."""
    return w.percentile(90)


@FEATURES.feature
def maximum(w: FirstOrderWindows) -> torch.Tensor:
    r""":math:`\max X`."""
    return w.ordered.gather(1, (w.count.long() - 1)[:, None])[:, 0]


@FEATURES.feature
def mean(w: FirstOrderWindows) -> torch.Tensor:
    r""":math:`\bar X = \frac{1}{N_p}\sum_k X_k`."""
    return w.mean


@FEATURES.feature
def median(w: FirstOrderWindows) -> torch.Tensor:
    r""":math:`P_{50}`."""
    return w.percentile(50)


@FEATURES.feature
def interquartile_range(w: FirstOrderWindows) -> torch.Tensor:
    r""":math:`P_{75} - P_{25}`."""
    return w.percentile(75) - w.percentile(25)


@FEATURES.feature(name="Range")
def value_range(w: FirstOrderWindows) -> torch.Tensor:
    r""":math:`\max X - \min X`."""
    return maximum(w) - minimum(w)


@FEATURES.feature
def mean_absolute_deviation(w: FirstOrderWindows) -> torch.Tensor:
    r""":math:`\frac{1}{N_p}\sum_k |X_k - \bar X|`."""
    deviation = torch.where(w.valid, (w.values - w.mean[:, None]).abs(), torch.zeros_like(w.values))
    return deviation.sum(1) / w.count


@FEATURES.feature
def robust_mean_absolute_deviation(w: FirstOrderWindows) -> torch.Tensor:
    r""":math:`\frac{1}{N_{10-90}}\sum_k |X_{10-90,k} - \bar X_{10-90}|` over the intensities in :math:`[P_{10}, P_{90}]`."""
    low, high = w.percentile(10), w.percentile(90)
    inside = w.valid & (w.values >= low[:, None]) & (w.values <= high[:, None])
    count = inside.sum(1).to(w.values.dtype)
    kept = torch.where(inside, w.values, torch.zeros_like(w.values))
    centre = kept.sum(1) / count
    return torch.where(inside, (w.values - centre[:, None]).abs(), torch.zeros_like(w.values)).sum(1) / count


@FEATURES.feature
def root_mean_squared(w: FirstOrderWindows) -> torch.Tensor:
    r""":math:`\sqrt{\frac{1}{N_p}\sum_k (X_k + c)^2}`."""
    return torch.sqrt(energy(w) / w.count)


@FEATURES.feature
def skewness(w: FirstOrderWindows) -> torch.Tensor:
    r""":math:`\mu_3 / \mu_2^{3/2}` with :math:`\mu_n = \frac{1}{N_p}\sum_k (X_k - \bar X)^n`; 0 in flat kernels."""
    m2, m3 = w.central_moment(2), w.central_moment(3)
    value = m3 / torch.where(m2 == 0, torch.ones_like(m2), m2) ** 1.5
    return torch.where(w.flat, torch.zeros_like(value), value)


@FEATURES.feature
def kurtosis(w: FirstOrderWindows) -> torch.Tensor:
    r""":math:`\mu_4 / \mu_2^{2}` (not excess kurtosis); 0 in flat kernels."""
    m2, m4 = w.central_moment(2), w.central_moment(4)
    value = m4 / torch.where(m2 == 0, torch.ones_like(m2), m2) ** 2
    return torch.where(w.flat, torch.zeros_like(value), value)


@FEATURES.feature
def variance(w: FirstOrderWindows) -> torch.Tensor:
    r""":math:`\mu_2 = \frac{1}{N_p}\sum_k (X_k - \bar X)^2`; 0 in flat kernels."""
    value = torch.sqrt(w.central_moment(2)) ** 2
    return torch.where(w.flat, torch.zeros_like(value), value)


@FEATURES.feature
def uniformity(w: FirstOrderWindows) -> torch.Tensor:
    r""":math:`\sum_i p(i)^2`."""
    return (w.probabilities**2).sum(1)


