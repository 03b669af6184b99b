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
each sum over :math:`P` is a sum over its pairs. Features that are functions of such sums
(registered with ``kernel_sums=True``: contrast, correlation, the inverse differences, ...) take a
:class:`PairSums`, which
:class:`CooccurrenceLists` (each kernel's gathered pair list) and
:class:`~radgazegen.controls.texture_glcm_windows.CooccurrenceWindows` (box sums over pair images, every
kernel of a region at once) both are; the others need each kernel's own distribution (entries,
marginals, sum/difference histograms, counted with :mod:`radgazegen.controls.multiset`) and take a
:class:`CooccurrenceLists`.
"""

from __future__ import annotations

import math
from functools import cached_property

import torch

from radgazegen.controls.multiset import DENSE_LIMIT, tally
from radgazegen.controls.texture_feature_set import FeatureSet
from radgazegen.controls.texture_firstorder import EPS
from radgazegen.threads import thread_map, workers

ANGLES = ((0, 1), (1, 0), (1, 1), (1, -1))
"""The in-plane (row, column) offsets at distance 1, one per direction."""
EIGEN_BATCH = 8192
"""Matrices per call of the batched eigen-solver (cuSOLVER's workspace grows with the batch)."""


class PairSums:
    """The terms of the features that are functions of sums over each kernel's pairs, per kernel and angle.

    A subclass gives the pair values (the integer grey levels ``first_levels``/``second_levels`` of the two
    ends and ``valid``) in its own layout and :meth:`kernel_sum`, the sum of a pair value over each kernel's
    pairs, per kernel and angle (angles on ``angle_axis``); ``max_level`` is :math:`N_g` and ``empty_angles``
    flags angles without a pair in the whole region (both broadcast against the pair values and the
    per-kernel results). Each pair stands for the two symmetric entries :math:`(i,j)` and :math:`(j,i)` of
    :math:`P`, so a sum over :math:`P` of a symmetric :math:`f` is the mean of :math:`f` over the pairs.
    """

    first_levels: torch.Tensor
    second_levels: torch.Tensor
    valid: torch.Tensor
    pairs: torch.Tensor
    max_level: int | torch.Tensor
    empty_angles: torch.Tensor
    dtype: torch.dtype

    @cached_property
    def a(self) -> torch.Tensor:
        """:math:`i` on the pairs, as ``dtype``."""
        return self.first_levels.to(self.dtype)

    @cached_property
    def b(self) -> torch.Tensor:
        """:math:`j` on the pairs, as ``dtype``."""
        return self.second_levels.to(self.dtype)

    @cached_property
    def present(self) -> torch.Tensor:
        """1 on the pairs, 0 elsewhere, as ``dtype``."""
        return self.valid.to(self.dtype)

    def kernel_sum(self, values: torch.Tensor) -> torch.Tensor:
        r""":math:`\sum` of a pair value over each kernel's pair slots (``values`` already zero on non-pairs)."""
        raise NotImplementedError

    def expectation(self, values: torch.Tensor) -> torch.Tensor:
        r""":math:`\sum_{i,j} f(i,j)P(i,j)` per kernel and angle, ``values`` = :math:`f` (symmetric) on the pairs.

        ``values`` must be finite on non-pairs (they hold level 0) so that the zero weight cancels them.
        """
        return self.kernel_sum(values * self.present) / self.pairs  # dividing last keeps flat kernels exact

    @cached_property
    def mean(self) -> torch.Tensor:
        r""":math:`\mu_x = \mu_y = \frac{1}{2}\sum_{i,j}(i+j)P(i,j)`."""
        return self.moment(self.level_sums, 1) / 2

    @cached_property
    def difference(self) -> torch.Tensor:
        """:math:`|i - j|` on the pairs, as ``dtype``."""
        return self.level_differences.to(self.dtype)

    @cached_property
    def level_sums(self) -> torch.Tensor:
        """:math:`i + j` on the pairs, as integers (the key of :math:`p_{x+y}`)."""
        return self.first_levels + self.second_levels

    @cached_property
    def level_differences(self) -> torch.Tensor:
        """:math:`|i - j|` on the pairs, as integers (the key of :math:`p_{x-y}`)."""
        return (self.first_levels - self.second_levels).abs()

    @cached_property
    def level_products(self) -> torch.Tensor:
        """:math:`ij` on the pairs, as integers."""
        return self.first_levels * self.second_levels

    def moment(self, keys: torch.Tensor, order: int) -> torch.Tensor:
        r""":math:`\sum_{i,j}k(i,j)^{order}P(i,j)` for an integer, symmetric pair key :math:`k`."""
        raise NotImplementedError

    def central_moment(self, keys: torch.Tensor, order: int) -> torch.Tensor:
        r""":math:`\sum_{i,j}(k(i,j)-\bar k)^{order}P(i,j)` for an integer, symmetric pair key :math:`k`."""
        raise NotImplementedError

    @cached_property
    def variance(self) -> torch.Tensor:
        r""":math:`\sigma_x^2 = \sum_{i,j}(i-\mu_x)^2P(i,j)`."""
        raise NotImplementedError

    @cached_property
    def covariance(self) -> torch.Tensor:
        r""":math:`\sum_{i,j}(i-\mu_x)(j-\mu_y)P(i,j)`."""
        raise NotImplementedError

    angle_axis = -1
    """The axis of the angles in the per-kernel results (the layout a subclass computes fastest)."""

    def average(self, per_angle: torch.Tensor) -> torch.Tensor:
        """Average over the angles, ignoring angles without pairs (pyradiomics' ``nanmean``)."""
        return torch.nanmean(per_angle, dim=self.angle_axis)

    def plain_average(self, per_angle: torch.Tensor) -> torch.Tensor:
        """Mean over the angles that have a pair somewhere in the region (``nan`` if one has none in this kernel)."""
        kept = ~self.empty_angles.expand_as(per_angle)
        return torch.where(kept, per_angle, 0).sum(self.angle_axis) / kept.sum(self.angle_axis)


class CooccurrenceLists(PairSums):
    """The pair lists of a batch of kernels, ``(voxels, angles, pairs)``, and the terms features share.

    ``first``/``second`` hold the grey levels (``>= 1``) of the two ends of each pair, ``valid`` marks
    real pairs; ``n_levels`` is the number of grey levels present in the region, ``max_level``
    :math:`N_g`, ``empty_angles`` flags angles without a single pair in any kernel of the region, and
    ``some_kernel_lacks_an_angle`` says whether a kernel of the region has no pair for another angle.
    Moments are centred on each kernel's own mean, exact for any number of pairs and levels.
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
        self.n_levels = n_levels
        self.max_level = max_level
        self.empty_angles = empty_angles
        self.some_kernel_lacks_an_angle = some_kernel_lacks_an_angle
        self.dtype = dtype

    @cached_property
    def pairs(self) -> torch.Tensor:
        return self.valid.sum(-1).to(self.dtype)

    def kernel_sum(self, values: torch.Tensor) -> torch.Tensor:
        return values.sum(-1)

    @cached_property
    def variance(self) -> torch.Tensor:
        centre = self.mean[..., None]
        return self.expectation(((self.a - centre) ** 2 + (self.b - centre) ** 2) / 2)

    @cached_property
    def covariance(self) -> torch.Tensor:
        centre = self.mean[..., None]
        return self.expectation((self.a - centre) * (self.b - centre))

    def moment(self, keys: torch.Tensor, order: int) -> torch.Tensor:
        return self.expectation(keys.to(self.dtype) ** order)

    def central_moment(self, keys: torch.Tensor, order: int) -> torch.Tensor:
        values = keys.to(self.dtype)
        return self.expectation((values - self.expectation(values)[..., None]) ** order)

    def key_entropy(self, keys: torch.Tensor, n_keys: int) -> torch.Tensor:
        """:math:`-\\sum_k p(k)\\log_2(p(k)+\\epsilon)` for a symmetric key of the pairs (in ``[0, n_keys)``).

        Summed over the pairs rather than the keys: each pair carries :math:`1/n` of its key's term / :math:`p(k)`.
        """
        share = tally(keys, self.valid, n_keys).element_counts.to(self.dtype) / self.pairs[..., None]
        return -self.expectation(torch.log2(share + EPS))

    @cached_property
    def local_levels(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Each pair end's rank among the grey levels of its kernel (any rank on non-pairs), and the most levels in a kernel."""
        n_keys = self.max_level + 1
        if n_keys > DENSE_LIMIT:
            ends = tally(torch.cat([self.first_levels, self.second_levels], -1), torch.cat([self.valid] * 2, -1), n_keys)
            ranks, size = ends.ranks
            half = self.first_levels.shape[-1]
            return ranks[..., :half], ranks[..., half:], size
        weight = self.valid.to(torch.int32)  # levels are in [0, N_g] on every slot, so no masking of the keys
        counts = torch.zeros((*self.valid.shape[:-1], n_keys), dtype=torch.int32, device=self.valid.device)
        used = counts.scatter_add_(-1, self.first_levels, weight).scatter_add_(-1, self.second_levels, weight) > 0
        compact = (torch.cumsum(used, dim=-1) - 1).clamp_(min=0)
        return compact.gather(-1, self.first_levels), compact.gather(-1, self.second_levels), int(used.sum(-1).max())

    @cached_property
    def cells(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Each pair's flat cell :math:`(a, b)` and :math:`(b, a)` in a kernel's ``levels x levels`` matrix, and ``levels``."""
        rank_a, rank_b, size = self.local_levels
        return rank_a * size + rank_b, rank_b * size + rank_a, size

    @cached_property
    def counts(self) -> torch.Tensor:
        """:math:`2nP` over the grey levels present in each kernel (counts of :math:`(i,j)` plus :math:`(j,i)`), ``(..., levels, levels)``."""
        cell, mirrored, size = self.cells
        counts = torch.zeros((*self.valid.shape[:-1], size * size), dtype=self.dtype, device=self.valid.device)
        counts.scatter_add_(-1, cell, self.present).scatter_add_(-1, mirrored, self.present)
        return counts.reshape(*self.valid.shape[:-1], size, size)

    @cached_property
    def level_counts(self) -> torch.Tensor:
        """:math:`2np_x(i)`: how many pair ends hold each grey level present in the kernel, zero-padded."""
        return self.counts.sum(-1)

    @cached_property
    def entry(self) -> torch.Tensor:
        """:math:`P(a, b)` at each pair; ``nan`` without pairs."""
        return self.counts.flatten(-2).gather(-1, self.cells[0]) / (2 * self.pairs[..., None])

    @cached_property
    def marginal(self) -> torch.Tensor:
        """:math:`p_x(i)=\\sum_j P(i,j)` over the grey levels present in each kernel, zero-padded; ``nan`` without pairs."""
        return self.level_counts / (2 * self.pairs[..., None])

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


FEATURES: FeatureSet[CooccurrenceLists] = FeatureSet("glcm")
"""The GLCM features, registered by the functions below."""


@FEATURES.feature(kernel_sums=True)
def autocorrelation(c: PairSums) -> torch.Tensor:
    r""":math:`\sum_{i,j} P(i,j)\,ij`."""
    return c.average(c.moment(c.level_products, 1))


@FEATURES.feature(kernel_sums=True)
def joint_average(c: PairSums) -> torch.Tensor:
    r""":math:`\mu_x = \sum_{i,j} P(i,j)\,i`; a plain mean over the angles (``nan`` if one has no pair here)."""
    return c.plain_average(c.mean)


def _cluster(c: PairSums, power: int) -> torch.Tensor:
    return c.average(c.central_moment(c.level_sums, power))


@FEATURES.feature(kernel_sums=True)
def cluster_prominence(c: PairSums) -> torch.Tensor:
    r""":math:`\sum_{i,j} (i+j-\mu_x-\mu_y)^4 P(i,j)`."""
    return _cluster(c, 4)


@FEATURES.feature(kernel_sums=True)
def cluster_shade(c: PairSums) -> torch.Tensor:
    r""":math:`\sum_{i,j} (i+j-\mu_x-\mu_y)^3 P(i,j)`."""
    return _cluster(c, 3)


@FEATURES.feature(kernel_sums=True)
def cluster_tendency(c: PairSums) -> torch.Tensor:
    r""":math:`\sum_{i,j} (i+j-\mu_x-\mu_y)^2 P(i,j)`."""
    return _cluster(c, 2)


@FEATURES.feature(kernel_sums=True)
def contrast(c: PairSums) -> torch.Tensor:
    r""":math:`\sum_{i,j} (i-j)^2 P(i,j)`."""
    return c.average(c.moment(c.level_differences, 2))


@FEATURES.feature(kernel_sums=True)
def correlation(c: PairSums) -> torch.Tensor:
    r""":math:`\frac{\sum_{i,j} P(i,j)(i-\mu_x)(j-\mu_y)}{\sigma_x\sigma_y+\epsilon}`; 1 where :math:`\sigma_x\sigma_y=0`."""
    spread = torch.sqrt(c.variance) * torch.sqrt(c.variance)
    value = c.covariance / (spread + EPS)
    return c.average(torch.where(spread == 0, torch.ones_like(value), value))


@FEATURES.feature(kernel_sums=True)
def difference_average(c: PairSums) -> torch.Tensor:
    r""":math:`\sum_k k\,p_{x-y}(k)`."""
    return c.average(c.moment(c.level_differences, 1))


@FEATURES.feature
def difference_entropy(c: CooccurrenceLists) -> torch.Tensor:
    r""":math:`-\sum_k p_{x-y}(k)\log_2(p_{x-y}(k)+\epsilon)`."""
    return c.average(c.key_entropy(c.level_differences, c.max_level))


@FEATURES.feature(kernel_sums=True)
def difference_variance(c: PairSums) -> torch.Tensor:
    r""":math:`\sum_k (k-DA)^2 p_{x-y}(k)` with :math:`DA` the difference average."""
    return c.average(c.central_moment(c.level_differences, 2))


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
    r""":math:`\sqrt{1-e^{-2(HXY2-HXY)}}` with :math:`HXY2=-\sum_{i,j}p_x(i)p_y(j)\log_2(p_x(i)p_y(j)+\epsilon)`; 0 where :math:`HXY2=HXY` (up to rounding).

    Without forming :math:`p_x p_y^T`: over the :math:`k` levels present, :math:`\log_2(p_ip_j+\epsilon) =
    \log_2 p_i + \log_2 p_j + \epsilon/(p_ip_j\ln 2) + O(\epsilon^2)`, so :math:`HXY2 = 2HX' - k^2\epsilon/\ln 2` with
    :math:`HX' = -\sum_i p_i\log_2 p_i = HX + k\epsilon/\ln 2`: :math:`HXY2 = 2HX + k(2-k)\epsilon/\ln 2`.
    """
    levels = (c.marginal > 0).sum(-1).to(c.dtype)
    hxy2 = 2 * c.marginal_entropy + levels * (2 - levels) * (EPS / math.log(2))
    gap = hxy2 - c.joint_entropy
    independent = gap.abs() <= 16 * EPS * torch.clamp(c.joint_entropy.abs(), min=1)
    value = torch.sqrt(1 - torch.exp(-2 * gap))
    return c.average(torch.where(independent, torch.zeros_like(value), value))


@FEATURES.feature(kernel_sums=True)
def idm(c: PairSums) -> torch.Tensor:
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
    size = c.counts.shape[-1]
    ends = c.level_counts.reshape(-1, size)
    levels = (ends > 0).sum(-1)  # ranks are compact: a row's levels are its leading block
    second = _second_largest_square(c.counts.reshape(-1, size, size), ends, levels)
    value = torch.sqrt(second).reshape(c.valid.shape[:-1])
    value[..., c.empty_angles] = torch.nan
    return c.average(value)


def _second_largest_square(counts: torch.Tensor, ends: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    r"""The second largest squared eigenvalue of :math:`B = D^{-1/2} P D^{-1/2}` for each matrix of pair
    ``counts`` :math:`2nP` (its leading ``levels`` x ``levels`` block) with row sums ``ends`` :math:`2np_x`; 0 below
    two levels. The :math:`2n` cancels: :math:`B_{ij} = C_{ij}/\sqrt{e_ie_j}`.

    :math:`\sqrt{p_x}` is the eigenvector of eigenvalue 1. Deflating it leaves eigenvalues
    :math:`\{0, \lambda_2, \dots\}`: with two levels the answer is :math:`\mathrm{tr}(B')^2`, with three the
    larger root of :math:`t^2 - \mathrm{tr}(B')t + e_2(B')`, both free of cancellation near 0; larger blocks
    go to a batched symmetric eigen-solver, grouped by size. All :math:`|\lambda| \le 1`, so with ascending
    eigenvalues the answer is the larger of :math:`\lambda_{k-2}^2` and :math:`\lambda_0^2`.
    """
    second = torch.zeros(levels.shape, dtype=counts.dtype, device=counts.device)
    batches = []
    for size in torch.unique(levels[levels >= 2]).tolist():
        rows = torch.nonzero(levels == size)[:, 0]
        held = ends[:, :size][rows]
        root = torch.sqrt(held)
        b = counts[:, :size, :size][rows] / (root[:, :, None] * root[:, None, :])
        if size > 3:
            piece = EIGEN_BATCH if counts.is_cuda else min(EIGEN_BATCH, -(-len(rows) // workers()))
            batches += zip(torch.split(rows, piece), torch.split(b, piece), strict=True)
            continue
        top = torch.sqrt(held / held.sum(-1, keepdim=True))
        d = b - top[:, :, None] * top[:, None, :]
        trace = torch.diagonal(d, dim1=-2, dim2=-1).sum(-1)
        minors = torch.zeros_like(trace)
        if size == 3:
            minors = (d[:, 0, 0] * d[:, 1, 1] - d[:, 0, 1] ** 2) + (d[:, 0, 0] * d[:, 2, 2] - d[:, 0, 2] ** 2)
            minors = minors + (d[:, 1, 1] * d[:, 2, 2] - d[:, 1, 2] ** 2)
        largest = (trace.abs() + torch.sqrt(torch.clamp(trace**2 - 4 * minors, min=0))) / 2
        second[rows] = largest**2
    for (rows, _), values in zip(batches, _eigenvalues([b for _, b in batches]), strict=True):
        second[rows] = torch.maximum(values[:, -2] ** 2, values[:, 0] ** 2)
    return second


def _eigenvalues(batches: list[torch.Tensor]) -> list[torch.Tensor]:
    """``torch.linalg.eigvalsh`` of each batch of symmetric matrices; on a CPU, batches go to
    :func:`~radgazegen.threads.thread_map` (torch solves a batch's small matrices one after another)."""
    if batches and batches[0].is_cuda:
        return [torch.linalg.eigvalsh(batch) for batch in batches]
    return list(thread_map(torch.linalg.eigvalsh, batches))


@FEATURES.feature(kernel_sums=True)
def idmn(c: PairSums) -> torch.Tensor:
    r""":math:`\sum_k \frac{p_{x-y}(k)}{1+k^2/N_g^2}`."""
    return c.average(c.expectation(1 / (1 + c.difference**2 / c.max_level**2)))


@FEATURES.feature(name="Id", kernel_sums=True)
def inverse_difference(c: PairSums) -> torch.Tensor:
    r""":math:`\sum_k \frac{p_{x-y}(k)}{1+k}`."""
    return c.average(c.expectation(1 / (1 + c.difference)))


@FEATURES.feature(kernel_sums=True)
def idn(c: PairSums) -> torch.Tensor:
    r""":math:`\sum_k \frac{p_{x-y}(k)}{1+k/N_g}`."""
    return c.average(c.expectation(1 / (1 + c.difference / c.max_level)))


@FEATURES.feature(kernel_sums=True)
def inverse_variance(c: PairSums) -> torch.Tensor:
    r""":math:`\sum_{k\ge1} \frac{p_{x-y}(k)}{k^2}`."""
    safe = torch.where(c.difference > 0, c.difference, torch.ones_like(c.difference))
    return c.average(c.expectation(torch.where(c.difference > 0, 1 / safe**2, torch.zeros_like(safe))))


@FEATURES.feature
def maximum_probability(c: CooccurrenceLists) -> torch.Tensor:
    r""":math:`\max_{i,j} P(i,j)`."""
    largest = torch.where(c.valid, c.entry, 0).amax(-1)
    return c.average(torch.where(c.pairs > 0, largest, torch.nan))


@FEATURES.feature(kernel_sums=True)
def sum_average(c: PairSums) -> torch.Tensor:
    r""":math:`\sum_k k\,p_{x+y}(k)`."""
    return c.average(c.moment(c.level_sums, 1))


@FEATURES.feature
def sum_entropy(c: CooccurrenceLists) -> torch.Tensor:
    r""":math:`-\sum_k p_{x+y}(k)\log_2(p_{x+y}(k)+\epsilon)`."""
    return c.average(c.key_entropy(c.level_sums, 2 * c.max_level + 1))


@FEATURES.feature(kernel_sums=True)
def sum_squares(c: PairSums) -> torch.Tensor:
    r""":math:`\sum_{i,j} (i-\mu_x)^2 P(i,j)`."""
    return c.average(c.variance)


