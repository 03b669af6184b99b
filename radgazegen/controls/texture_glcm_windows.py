r"""GLCM pair sums of every kernel of a region at once, by box filters over per-angle pair images.

For angle :math:`\delta=(\delta_y,\delta_x)` the pair image holds at each voxel :math:`x` the grey levels
:math:`(L(x), L(x+\delta))` of the pair starting there (level 0, no pair, where an end is outside the
kernel region). The pairs of the kernel centred at :math:`c` with both ends inside it start in the box
:math:`[c_y-r, c_y+r-\delta_y] \times [c_x-r+\max(0,-\delta_x), c_x+r-\max(0,\delta_x)]`, so a sum over
a kernel's pairs is a box sum of the pair image: a sliding sum along the rows, then along the columns,
:math:`O(r)` additions per voxel and angle where gathering each kernel's pair list costs :math:`O(r^2)`,
and no per-voxel intermediates. Box sums of the ``valid`` flags count the pairs, so a masked kernel and
the image border need nothing else.

Central moments (variance, covariance, cluster moments, difference variance) come from raw power sums,
which can cancel; here they are exact instead: grey levels are integers, so the power sums are summed
and combined in int64 and divided once (:meth:`CooccurrenceWindows.exact` bounds the integers below
:math:`2^{63}`: radius 5 with 32 levels, radius 3 with 64, radius 2 with 256;
:func:`radgazegen.controls.texture.texture_maps` falls back to pair lists beyond that). pyradiomics' matrix-based features need each kernel's own
distribution and stay with :class:`~radgazegen.controls.texture_glcm.CooccurrenceLists`.

Images of one batch share the layout: tensors are ``(images, rows, cols)``, results ``(angles, kernels)`` at
the target voxels, image by image, each in row-major order.
"""

from __future__ import annotations

from functools import cached_property
from math import comb

import torch

from radgazegen.controls.texture_glcm import ANGLES, PairSums


def box_sum(values: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Sums of every ``height x width`` box of the last two axes (``(..., H, W)`` -> ``(..., H-height+1, W-width+1)``).

    Added slice by slice in a fixed order, so sums are exact for integers and zero boxes stay exactly
    zero (a cumulative-sum difference would leave rounding there).
    """
    rows = values[..., : values.shape[-2] - height + 1, :].clone()
    for shift in range(1, height):
        rows += values[..., shift : values.shape[-2] - height + 1 + shift, :]
    boxes = rows[..., : rows.shape[-1] - width + 1].clone()
    for shift in range(1, width):
        boxes += rows[..., shift : rows.shape[-1] - width + 1 + shift]
    return boxes


class CooccurrenceWindows(PairSums):
    """Pair images of a batch of same-shape level grids and the box sums that give each kernel's pair sums,
    ``(angles, kernels)``: angles first, so that each angle's results are contiguous.

    ``levels``: ``(images, height, width)`` integer grey levels, 0 outside the kernel region; ``radius``
    :math:`r`; the kernels are centred where ``targets`` (same shape, bool) is true, in row-major order image by
    image; ``max_level`` :math:`N_g` per image (``(images,)``); ``dtype`` of the results.
    """

    angle_axis = 0

    def __init__(
        self,
        levels: torch.Tensor,
        radius: int,
        targets: torch.Tensor,
        *,
        max_level: torch.Tensor,
        dtype: torch.dtype,
    ) -> None:
        small = int(max_level.max()) < 2**15  # then sums, differences and products of levels fit int32
        grid = torch.nn.functional.pad(levels.to(torch.int32 if small else torch.int64), (radius + 1,) * 4)
        height, width = grid.shape[-2] - 1, grid.shape[-1] - 2  # pair starts: rows [0, H-1), cols [1, W-1)
        first = grid[:, None, :height, 1 : 1 + width]  # the same first ends for every angle
        self.first_levels = first.expand(-1, len(ANGLES), -1, -1)
        self.second_levels = torch.stack([grid[:, dy : dy + height, 1 + dx : 1 + dx + width] for dy, dx in ANGLES], 1)
        self.valid = (first > 0) & (self.second_levels > 0)
        self.radius = radius
        self._targets = targets
        self._kernels = int(targets.sum())
        self._everywhere = self._kernels == targets.numel()  # every voxel of every grid is a kernel centre: slice
        self._box_indices: dict[int, torch.Tensor] = {}
        self._power_cache: dict[int, tuple[torch.Tensor, list[torch.Tensor]]] = {}
        self.dtype = dtype
        self.max_level = max_level.to(dtype)[:, None, None, None]
        self.pair_counts = self.kernel_sum(self.valid.to(torch.int32), torch.int64)
        self.pairs = self.pair_counts.to(dtype)

    @cached_property
    def _target_index(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Image, row and column of each kernel centre."""
        return torch.nonzero(self._targets, as_tuple=True)

    @cached_property
    def empty_angles(self) -> torch.Tensor:
        """Per kernel, the angles without a pair in any kernel of its image."""
        image_index = self._target_index[0]
        kernels_with_pairs = torch.zeros((len(self.max_level), len(ANGLES)), dtype=torch.int32, device=image_index.device)
        kernels_with_pairs.index_add_(0, image_index, (self.pair_counts > 0).int().T)
        return (kernels_with_pairs == 0)[image_index].T

    @cached_property
    def a(self) -> torch.Tensor:
        """:math:`i` on the pairs: one converted copy, shared by the angles."""
        return self.first_levels[:, :1].to(self.dtype).expand_as(self.second_levels)

    @staticmethod
    def exact(radius: int, max_level: int) -> bool:
        r"""Whether the int64 central moments below cannot overflow: each of the terms of the 4th moment of
        :math:`k = a+b \le 2N_g` is at most :math:`\binom{4}{j} n^5 (2N_g)^4` with :math:`n = 2r(2r+1)` pairs."""
        pairs = 2 * radius * (2 * radius + 1)
        return 16 * pairs**5 * (2 * max_level) ** 4 < 2**63

    def kernel_sum(self, values: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Box sums of ``values`` at each kernel, ``(angles, kernels)``, written straight into ``dtype`` (default:
        that of ``values``)."""
        found = torch.empty((len(ANGLES), self._kernels), dtype=dtype or values.dtype, device=values.device)
        for angle, (dy, dx) in enumerate(ANGLES):
            boxes = box_sum(values[:, angle], 2 * self.radius + 1 - dy, 2 * self.radius + 1 - abs(dx))
            if self._everywhere:  # the kernels' boxes are a block of every grid: slice, no gather
                rows, cols = self.second_levels.shape[-2] - 2 * self.radius - 1, boxes.shape[-1] - abs(dx)
                found[angle] = boxes[:, 1 : 1 + rows, max(0, -dx) : max(0, -dx) + cols].reshape(-1)
            else:
                found[angle] = boxes.reshape(-1)[self._box_index(angle, boxes.shape)]
        return found

    def _box_index(self, angle: int, shape: torch.Size) -> torch.Tensor:
        """Flat index of each kernel's box sum in the box sums of ``angle`` (which have ``shape``)."""
        if angle not in self._box_indices:
            image_index, rows, cols = self._target_index
            dx = ANGLES[angle][1]
            self._box_indices[angle] = (image_index * shape[-2] + rows + 1) * shape[-1] + cols + max(0, -dx)
        return self._box_indices[angle]

    def _power_sums(self, keys: torch.Tensor, order: int) -> list[torch.Tensor]:
        """:math:`S_j = \\sum k^j` over each kernel's pairs, ``j = 0..order``, in int64 (kept per key tensor)."""
        sums = self._power_cache.setdefault(id(keys), (keys, [self.pair_counts]))[1]
        if len(sums) <= order:
            kept = torch.where(self.valid, keys, 0)
            largest = int(kept.max())
            for power in range(len(sums), order + 1):
                wide = (2 * self.radius + 1) ** 2 * largest**power >= 2**31  # a kernel's sum of k^power may not fit int32
                sums.append(self.kernel_sum((kept.long() if wide else kept) ** power, torch.int64))
        return sums

    def moment(self, keys: torch.Tensor, order: int) -> torch.Tensor:
        """:math:`S_m / n`."""
        return self._power_sums(keys, order)[order].to(self.dtype) / self.pairs

    def central_moment(self, keys: torch.Tensor, order: int) -> torch.Tensor:
        """:math:`\\frac{1}{n^{m+1}}\\sum_j \\binom{m}{j} n^j S_j (-S_1)^{m-j}`, i.e. :math:`\\frac{1}{n}\\sum (k - S_1/n)^m`."""
        sums = self._power_sums(keys, order)
        n, first = sums[0], sums[1]
        total = sum(comb(order, j) * n**j * sums[j] * (-first) ** (order - j) for j in range(order + 1))
        return total.to(self.dtype) / self.pairs ** (order + 1)

    @cached_property
    def variance(self) -> torch.Tensor:
        """Of the :math:`2n` pooled pair ends: :math:`(2n\\sum(a^2+b^2) - (\\sum(a+b))^2) / (2n)^2`,
        :math:`\\sum(a^2+b^2) = \\sum(a+b)^2 - 2\\sum ab`."""
        n, total, squares = self._power_sums(self.level_sums, 2)[:3]
        products = self._power_sums(self.level_products, 1)[1]
        return (2 * n * (squares - 2 * products) - total**2).to(self.dtype) / (2 * self.pairs) ** 2

    @cached_property
    def covariance(self) -> torch.Tensor:
        """:math:`\\sum ab/n - \\mu^2 = (4n\\sum ab - (\\sum(a+b))^2) / (4n^2)`."""
        n, total = self._power_sums(self.level_sums, 1)[:2]
        products = self._power_sums(self.level_products, 1)[1]
        return (4 * n * products - total**2).to(self.dtype) / (4 * self.pairs**2)
