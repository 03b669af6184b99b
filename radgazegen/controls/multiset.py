"""Counting equal values per row: the histogram of each row's small multiset of integer keys.

Two strategies give the same :class:`Tally`: a dense histogram (one scatter-add into ``n_keys`` bins)
when the key range is small, and sorting each row into runs of equal keys when it is not.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

DENSE_LIMIT = 256
"""Key ranges up to this size are counted in dense bins; larger ones by sorting."""


@dataclass(frozen=True)
class Tally:
    """Counts of the valid keys of each row (last axis) of a ``(..., n)`` tensor.

    ``counts[..., s]`` is the multiplicity of slot ``s`` (a key's bin, or the ``s``-th distinct key),
    zero for unused slots; ``slot[..., m]`` the slot of element ``m`` (some slot in range for invalid
    elements, which ``valid`` marks). Slots are in ascending key order either way.
    """

    counts: torch.Tensor
    slot: torch.Tensor
    valid: torch.Tensor

    @property
    def element_counts(self) -> torch.Tensor:
        """The multiplicity of each element's own key (0 for invalid elements)."""
        return torch.where(self.valid, self.counts.gather(-1, self.slot), 0)

    @property
    def ranks(self) -> tuple[torch.Tensor, int]:
        """Each element's rank among its row's distinct keys (some rank in range for invalid elements), and the
        most keys in a row."""
        used = self.counts > 0
        compact = (torch.cumsum(used, dim=-1) - 1).clamp_(min=0)
        return compact.gather(-1, self.slot), int(used.sum(-1).max())


def tally(keys: torch.Tensor, valid: torch.Tensor, n_keys: int) -> Tally:
    """Count the valid keys (integers in ``[0, n_keys)``) of each row of ``keys``."""
    if n_keys <= DENSE_LIMIT:
        kept = torch.where(valid, keys, 0)
        counts = torch.zeros((*keys.shape[:-1], n_keys), dtype=torch.int32, device=keys.device)
        counts.scatter_add_(-1, kept, valid.int())
        return Tally(counts=counts, slot=kept, valid=valid)
    sentinel = torch.iinfo(keys.dtype).max
    ordered, order = torch.sort(torch.where(valid, keys, sentinel), dim=-1)
    live = ordered != sentinel
    starts = live.clone()
    starts[..., 1:] &= ordered[..., 1:] != ordered[..., :-1]
    run_index = torch.cumsum(starts, dim=-1) - 1
    counts = torch.zeros(keys.shape, dtype=torch.int32, device=keys.device)
    counts.scatter_add_(-1, run_index.clamp(min=0), live.int())
    slot = torch.empty_like(run_index).scatter_(-1, order, run_index.clamp(min=0))
    return Tally(counts=counts, slot=slot, valid=valid)


class ItemLists:
    """Rows of items (``(..., n)``, invalid slots masked out) with means over the valid items of each row.

    The base of the kernel-wise feature classes whose features are averages over a kernel's voxels,
    runs or zones; ``count`` is the number of valid items per row.
    """

    def __init__(self, valid: torch.Tensor, dtype: torch.dtype) -> None:
        self.valid = valid
        self.dtype = dtype
        self.present = valid.to(dtype)
        self.count = self.present.sum(-1)

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The mean of ``values`` over each row's valid items (``values`` must be finite on invalid slots)."""
        return (values * self.present).sum(-1) / self.count

    def share(self, keys: torch.Tensor, n_keys: int) -> torch.Tensor:
        """Each item's share of its row's items with the same key (keys in ``[0, n_keys)``)."""
        return tally(keys, self.valid, n_keys).element_counts.to(self.dtype) / self.count[..., None]
