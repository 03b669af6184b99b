r"""Grey-level co-occurrence (GLCM) features of each voxel's kernel, as pyradiomics defines them.

Per voxel and angle :math:`a` (the four in-plane directions at distance 1), :math:`P(i,j)` is the
symmetric co-occurrence matrix of the pairs :math:`(x, x+a)` with both voxels in the kernel (and in
the mask when the kernel is masked), normalised to sum 1; :math:`i, j` run over the discretised grey
levels, :math:`p_x(i)=\sum_j P(i,j)` (equal to :math:`p_y` by symmetry), :math:`\mu_x=\sum_{i,j} i P(i,j)`,
:math:`\sigma_x^2=\sum_{i,j}(i-\mu_x)^2P(i,j)`, :math:`p_{x+y}(k)=\sum_{i+j=k}P(i,j)`,
:math:`p_{x-y}(k)=\sum_{|i-j|=k}P(i,j)`, :math:`N_g` the highest grey level in the region and
:math:`\epsilon` the float64 spacing at 1. Each feature is computed per angle and averaged over the
angles with a pair (``nanmean``), as pyradiomics does.

The matrices are never formed: a kernel holds at most :math:`2(2r+1)2r` ordered pairs per angle, so
each sum over :math:`P` is a sum over that list, and the entries, marginals and sum/difference
distributions come from counting equal keys in it (:mod:`radgazegen.controls.multiset`).
"""

from __future__ import annotations

from functools import cached_property

import torch

from radgazegen.controls.multiset import tally
from radgazegen.controls.texture_feature_set import FeatureSet
from radgazegen.controls.texture_firstorder import EPS

ANGLES = ((0, 1), (1, 0), (1, 1), (1, -1))
"""The in-plane (row, column) offsets at distance 1, one per direction."""
EIGEN_BATCH = 8192
"""Matrices per call of the batched eigen-solver (cuSOLVER's workspace grows with the batch)."""


class CooccurrenceLists:
    """The pair lists of a batch of kernels, ``(voxels, angles, pairs)``, and the terms features share.

    ``first``/``second`` hold the grey levels (``>= 1``) of the two ends of each pair, ``valid`` marks
    real pairs; ``n_levels`` is the number of grey levels present in the region, ``max_level``
    :math:`N_g`, ``empty_angles`` flags angles without a single pair in any kernel of the region, and
    ``some_kernel_lacks_an_angle`` says whether a kernel of the region has no pair for another angle.
    Each pair stands for the two symmetric entries :math:`(i,j)` and :math:`(j,i)` of :math:`P`, so a
    sum over :math:`P` of a symmetric :math:`f` is the mean of :math:`f` over the pairs.
    """

    def __init__(
        self,
        first: torch.Tensor,
        second: torch.Tensor,
        valid: torch.Tensor,
        *,
        n_levels: int,
        max_level: int,
        empty_angles: torch.Tensor,
        some_kernel_lacks_an_angle: bool,
        dtype: torch.dtype,
    ) -> None:
        self.first_levels, self.second_levels, self.valid = first, second, valid
        self.a = first.to(dtype)
        self.b = second.to(dtype)
        self.pairs = valid.sum(-1).to(dtype)
        self.present = valid.to(dtype)
        self.n_levels = n_levels
        self.max_level = max_level
        self.empty_angles = empty_angles
        self.some_kernel_lacks_an_angle = some_kernel_lacks_an_angle
        self.dtype = dtype

    def expectation(self, values: torch.Tensor) -> torch.Tensor:
        """:math:`\\sum_{i,j} f(i,j)P(i,j)` per voxel and angle, ``values`` = :math:`f` (symmetric) on the pairs.

        ``values`` must be finite on padding slots (they hold level 0) so that the zero weight cancels them.
        """
        return (values * self.present).sum(-1) / self.pairs  # dividing last keeps flat kernels exact

    def key_entropy(self, keys: torch.Tensor, n_keys: int) -> torch.Tensor:
        """:math:`-\\sum_k p(k)\\log_2(p(k)+\\epsilon)` for a symmetric key of the pairs (in ``[0, n_keys)``).

        Summed over the pairs rather than the keys: each pair carries :math:`1/n` of its key's term / :math:`p(k)`.
        """
        share = tally(keys, self.valid, n_keys).element_counts.to(self.dtype) / self.pairs[..., None]
        return -self.expectation(torch.log2(share + EPS))

    @cached_property
    def local_levels(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Each pair end's rank among the grey levels of its kernel, and the most levels in a kernel."""
        ends = tally(torch.cat([self.first_levels, self.second_levels], -1), torch.cat([self.valid] * 2, -1),
                     self.max_level + 1)  # fmt: skip
        ranks, size = ends.ranks
        half = self.a.shape[-1]
        return ranks[..., :half], ranks[..., half:], size

    @cached_property
    def matrix(self) -> torch.Tensor:
        """:math:`P` over the grey levels present in each kernel, ``(..., levels, levels)``; ``nan`` without pairs."""
        rank_a, rank_b, size = self.local_levels
        counts = torch.zeros((*self.valid.shape[:-1], size * size), dtype=self.dtype, device=self.valid.device)
        counts.scatter_add_(-1, rank_a * size + rank_b, self.present).scatter_add_(
            -1, rank_b * size + rank_a, self.present
        )
        return (counts / (2 * self.pairs[..., None])).reshape(*self.valid.shape[:-1], size, size)

    @cached_property
    def entry(self) -> torch.Tensor:
        """:math:`P(a, b)` at each pair."""
        rank_a, rank_b, size = self.local_levels
        return self.matrix.flatten(-2).gather(-1, rank_a * size + rank_b)

    @cached_property
    def marginal(self) -> torch.Tensor:
        """:math:`p_x(i)=\\sum_j P(i,j)` over the grey levels present in each kernel, zero-padded."""
        return self.matrix.sum(-1)

    @cached_property
    def end_marginals(self) -> tuple[torch.Tensor, torch.Tensor]:
        """:math:`p_x(a)` and :math:`p_x(b)` at the two ends of each pair."""
        rank_a, rank_b, _ = self.local_levels
        return self.marginal.gather(-1, rank_a), self.marginal.gather(-1, rank_b)

    @cached_property
    def marginal_entropy(self) -> torch.Tensor:
        """:math:`HX = HY = -\\sum_i p_x(i)\\log_2(p_x(i)+\\epsilon)`."""
        return -(self.marginal * torch.log2(self.marginal + EPS)).sum(-1)

    @cached_property
    def joint_entropy(self) -> torch.Tensor:
        """:math:`HXY = -\\sum_{i,j} P(i,j)\\log_2(P(i,j)+\\epsilon)`."""
        return -self.expectation(torch.log2(self.entry + EPS))

    @cached_property
    def mean(self) -> torch.Tensor:
        return self.expectation((self.a + self.b) / 2)

    @cached_property
    def variance(self) -> torch.Tensor:
        centre = self.mean[..., None]
        return self.expectation(((self.a - centre) ** 2 + (self.b - centre) ** 2) / 2)

    @cached_property
    def difference(self) -> torch.Tensor:
        return (self.a - self.b).abs()

    def average(self, per_angle: torch.Tensor) -> torch.Tensor:
        """Average over the angles, ignoring angles without pairs (pyradiomics' ``nanmean``)."""
        return torch.nanmean(per_angle, dim=-1)


FEATURES: FeatureSet[CooccurrenceLists] = FeatureSet("glcm")
"""The GLCM features, registered by the functions below."""


@FEATURES.feature
def autocorrelation(c: CooccurrenceLists) -> torch.Tensor:
    r""":math:`\sum_{i,j} P(i,j)\,ij`."""
    return c.average(c.expectation(c.a * c.b))


@FEATURES.feature
def joint_average(c: CooccurrenceLists) -> torch.Tensor:
    r""":math:`\mu_x = \sum_{i,j} P(i,j)\,i`; a plain mean over the angles (``nan`` if one has no pair here)."""
    return c.mean[..., ~c.empty_angles].mean(-1)


def _cluster(c: CooccurrenceLists, power: int) -> torch.Tensor:
    return c.average(c.expectation((c.a + c.b - 2 * c.mean[..., None]) ** power))


@FEATURES.feature
def cluster_prominence(c: CooccurrenceLists) -> torch.Tensor:
    r""":math:`\sum_{i,j} (i+j-\mu_x-\mu_y)^4 P(i,j)`."""
    return _cluster(c, 4)


@FEATURES.feature
def cluster_shade(c: CooccurrenceLists) -> torch.Tensor:
    r""":math:`\sum_{i,j} (i+j-\mu_x-\mu_y)^3 P(i,j)`."""
    return _cluster(c, 3)


@FEATURES.feature
def cluster_tendency(c: CooccurrenceLists) -> torch.Tensor:
    r""":math:`\sum_{i,j} (i+j-\mu_x-\mu_y)^2 P(i,j)`."""
    return _cluster(c, 2)


@FEATURES.feature
def contrast(c: CooccurrenceLists) -> torch.Tensor:
    r""":math:`\sum_{i,j} (i-j)^2 P(i,j)`."""
    return c.average(c.expectation(c.difference**2))


@FEATURES.feature
def correlation(c: CooccurrenceLists) -> torch.Tensor:
    r""":math:`\frac{\sum_{i,j} P(i,j)(i-\mu_x)(j-\mu_y)}{\sigma_x\sigma_y+\epsilon}`; 1 where :math:`\sigma_x\sigma_y=0`."""
    centre = c.mean[..., None]
    covariance = c.expectation((c.a - centre) * (c.b - centre))
    spread = torch.sqrt(c.variance) * torch.sqrt(c.variance)
    value = covariance / (spread + EPS)
    return c.average(torch.where(spread == 0, torch.ones_like(value), value))


@FEATURES.feature
def difference_average(c: CooccurrenceLists) -> torch.Tensor:
    r""":math:`\sum_k k\,p_{x-y}(k)`."""
    return c.average(c.expectation(c.difference))


@FEATURES.feature
def difference_entropy(c: CooccurrenceLists) -> torch.Tensor:
    r""":math:`-\sum_k p_{x-y}(k)\log_2(p_{x-y}(k)+\epsilon)`."""
    return c.average(c.key_entropy((c.first_levels - c.second_levels).abs(), c.max_level))


@FEATURES.feature
def difference_variance(c: CooccurrenceLists) -> torch.Tensor:
    r""":math:`\sum_k (k-DA)^2 p_{x-y}(k)` with :math:`DA` the difference average."""
    centre = c.expectation(c.difference)[..., None]
    return c.average(c.expectation((c.difference - centre) ** 2))


@FEATURES.feature
def joint_energy(c: CooccurrenceLists) -> torch.Tensor:
    r""":math:`\sum_{i,j} P(i,j)^2`."""
    return c.average(c.expectation(c.entry))


@FEATURES.feature
def joint_entropy(c: CooccurrenceLists) -> torch.Tensor:
    r""":math:`HXY = -\sum_{i,j} P(i,j)\log_2(P(i,j)+\epsilon)`."""
    return c.average(c.joint_entropy)


@FEATURES.feature
def imc1(c: CooccurrenceLists) -> torch.Tensor:
    r""":math:`\frac{HXY - HXY1}{\max(HX, HY)}` with :math:`HXY1=-\sum_{i,j}P(i,j)\log_2(p_x(i)p_y(j)+\epsilon)`; 0 where the denominator is 0."""
    p_first, p_second = c.end_marginals
    hxy1 = -c.expectation(torch.log2(p_first * p_second + EPS))
    div = c.marginal_entropy
    value = (c.joint_entropy - hxy1) / torch.where(div != 0, div, torch.ones_like(div))
    return c.average(torch.where(div == 0, torch.zeros_like(value), value))


@FEATURES.feature
def imc2(c: CooccurrenceLists) -> torch.Tensor:
    r""":math:`\sqrt{1-e^{-2(HXY2-HXY)}}` with :math:`HXY2=-\sum_{i,j}p_x(i)p_y(j)\log_2(p_x(i)p_y(j)+\epsilon)`; 0 where :math:`HXY2=HXY` (up to rounding)."""
    outer = c.marginal[..., :, None] * c.marginal[..., None, :]
    hxy2 = -(outer * torch.log2(outer + EPS)).sum((-2, -1))
    gap = hxy2 - c.joint_entropy
    independent = gap.abs() <= 16 * EPS * torch.clamp(c.joint_entropy.abs(), min=1)
    value = torch.sqrt(1 - torch.exp(-2 * gap))
    return c.average(torch.where(independent, torch.zeros_like(value), value))


@FEATURES.feature
def idm(c: CooccurrenceLists) -> torch.Tensor:
    r""":math:`\sum_k \frac{p_{x-y}(k)}{1+k^2}`."""
    return c.average(c.expectation(1 / (1 + c.difference**2)))


@FEATURES.feature(name="MCC")
def mcc(c: CooccurrenceLists) -> torch.Tensor:
    r""":math:`\sqrt{\lambda_2(Q)}`, :math:`Q(i,j)=\sum_k \frac{P(i,k)P(j,k)}{p_x(i)p_y(k)}`, the second largest eigenvalue.

    With :math:`P` symmetric, :math:`Q` is similar to :math:`B^2` for the symmetric
    :math:`B = D^{-1/2} P D^{-1/2}`, :math:`D=\mathrm{diag}(p_x)`, restricted to the levels present, so
    its eigenvalues are the squares of :math:`B`'s (plus zeros for absent levels). As in pyradiomics,
    the map is 1 when the region has a single grey level, and ``nan`` everywhere when some kernel has an
    angle without pairs that other kernels have (pyradiomics' eigen-solver fails on that batch).
    """
    if c.n_levels < 2:
        return torch.ones(c.valid.shape[0], dtype=c.dtype, device=c.valid.device)
    if c.some_kernel_lacks_an_angle:
        return torch.full((c.valid.shape[0],), torch.nan, dtype=c.dtype, device=c.valid.device)
    outer = c.marginal[..., :, None] * c.marginal[..., None, :]
    p = torch.nan_to_num(c.matrix)  # angles without pairs: zeros here, nan again below
    b = torch.where(p > 0, p / torch.sqrt(torch.where(outer > 0, outer, 1)), 0)
    levels = (c.marginal > 0).sum(-1).reshape(-1)  # ranks are compact: a kernel's levels are the leading block
    second = _second_largest_square(
        b.reshape(-1, *b.shape[-2:]), torch.sqrt(c.marginal).reshape(levels.shape[0], -1), levels
    )
    value = torch.sqrt(second).reshape(c.valid.shape[:-1])
    value[..., c.empty_angles] = torch.nan
    return c.average(value)


def _second_largest_square(b: torch.Tensor, top: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """The second largest squared eigenvalue of each symmetric ``b`` (leading ``levels`` x ``levels`` block).

    ``top`` is the known eigenvector of eigenvalue 1 (:math:`\\sqrt{p_x}`). Deflating it leaves
    eigenvalues :math:`\\{0, \\lambda_2, \\dots\\}`: with two levels the answer is :math:`\\mathrm{tr}(B')^2`, with
    three the larger root of :math:`t^2 - \\mathrm{tr}(B')t + e_2(B')`, both free of cancellation near 0;
    larger kernels go to a batched symmetric eigen-solver, grouped by size.
    """
    second = torch.zeros(levels.shape, dtype=b.dtype, device=b.device)  # one level: the other eigenvalues are 0
    small = (levels == 2) | (levels == 3)
    if bool(small.any()):
        rows = torch.nonzero(small)[:, 0]
        width = min(3, b.shape[-1])
        v = top[rows, :width]
        d = b[rows, :width, :width] - v[:, :, None] * v[:, None, :]
        trace = torch.diagonal(d, dim1=-2, dim2=-1).sum(-1)
        if width == 3:
            minors = (d[:, 0, 0] * d[:, 1, 1] - d[:, 0, 1] ** 2) + (d[:, 0, 0] * d[:, 2, 2] - d[:, 0, 2] ** 2)
            minors = minors + (d[:, 1, 1] * d[:, 2, 2] - d[:, 1, 2] ** 2)
            minors = torch.where(levels[rows] == 3, minors, 0)
        else:
            minors = torch.zeros_like(trace)
        largest = (trace.abs() + torch.sqrt(torch.clamp(trace**2 - 4 * minors, min=0))) / 2
        second[rows] = largest**2
    for size in torch.unique(levels[levels >= 4]).tolist():
        for rows in torch.split(torch.nonzero(levels == size)[:, 0], EIGEN_BATCH):
            squares = torch.linalg.eigvalsh(b[rows, :size, :size]) ** 2
            second[rows] = torch.sort(squares, dim=-1, descending=True)[0][:, 1]
    return second


@FEATURES.feature
def idmn(c: CooccurrenceLists) -> torch.Tensor:
    r""":math:`\sum_k \frac{p_{x-y}(k)}{1+k^2/N_g^2}`."""
    return c.average(c.expectation(1 / (1 + c.difference**2 / c.max_level**2)))


@FEATURES.feature(name="Id")
def inverse_difference(c: CooccurrenceLists) -> torch.Tensor:
    r""":math:`\sum_k \frac{p_{x-y}(k)}{1+k}`."""
    return c.average(c.expectation(1 / (1 + c.difference)))


@FEATURES.feature
def idn(c: CooccurrenceLists) -> torch.Tensor:
    r""":math:`\sum_k \frac{p_{x-y}(k)}{1+k/N_g}`."""
    return c.average(c.expectation(1 / (1 + c.difference / c.max_level)))


@FEATURES.feature
def inverse_variance(c: CooccurrenceLists) -> torch.Tensor:
    r""":math:`\sum_{k\ge1} \frac{p_{x-y}(k)}{k^2}`."""
    safe = torch.where(c.difference > 0, c.difference, torch.ones_like(c.difference))
    return c.average(c.expectation(torch.where(c.difference > 0, 1 / safe**2, torch.zeros_like(safe))))


@FEATURES.feature
def maximum_probability(c: CooccurrenceLists) -> torch.Tensor:
    r""":math:`\max_{i,j} P(i,j)`."""
    largest = torch.where(c.valid, c.entry, 0).amax(-1)
    return c.average(torch.where(c.pairs > 0, largest, torch.nan))


@FEATURES.feature
def sum_average(c: CooccurrenceLists) -> torch.Tensor:
    r""":math:`\sum_k k\,p_{x+y}(k)`."""
    return c.average(c.expectation(c.a + c.b))


@FEATURES.feature
def sum_entropy(c: CooccurrenceLists) -> torch.Tensor:
    r""":math:`-\sum_k p_{x+y}(k)\log_2(p_{x+y}(k)+\epsilon)`."""
    return c.average(c.key_entropy(c.first_levels + c.second_levels, 2 * c.max_level + 1))


@FEATURES.feature
def sum_squares(c: CooccurrenceLists) -> torch.Tensor:
    r""":math:`\sum_{i,j} (i-\mu_x)^2 P(i,j)`."""
    return c.average(c.variance)


