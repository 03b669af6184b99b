"""Torch data set of (image, report prompt, control maps) for training the generator."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from radgazegen.controls.extract import load_controls, load_registry
from radgazegen.data.image_cache import cached_image
from radgazegen.data.reflacx import ReflacxDataset


class GeneratorDataset(torch.utils.data.Dataset):
    """Cases of one split as ``{"image": (1, S, S) in [-1, 1], "prompt": str, "controls": (C, S, S) in [0, 1]}``.

    Images come from :func:`~radgazegen.data.image_cache.cached_image` (area-resampled as the control maps were,
    cached in the run); controls come from
    ``<run_dir>/controls`` (extracted with :func:`radgazegen.controls.extract.extract_controls`),
    normalised by the saved registry.
    """

    def __init__(
        self,
        dataset: ReflacxDataset,
        run_dir: str | Path,
        controls: Sequence[str],
        size: int,
        split: str | None = "train",
    ) -> None:
        self.cases = [case for case in dataset if split is None or case.split == split]
        if not self.cases:
            raise ValueError(f"{dataset.root}: no cases in split {split!r}")
        self.run_dir, self.controls, self.size = Path(run_dir), list(controls), size
        self.registry = load_registry(run_dir) if self.controls else None
        if self.registry is not None and self.registry.settings.size != size:
            raise ValueError(f"{self.run_dir / 'controls'}: controls were extracted at {self.registry.settings.size} px, "
                             f"the generator works at {size} px")  # fmt: skip

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, index: int) -> dict:
        case = self.cases[index]
        small = cached_image(case, self.run_dir, self.size)
        item = {"image": torch.from_numpy(small[None] * 2 - 1), "prompt": case.transcription()}
        maps = load_controls(self.run_dir, case.id, self.controls, self.registry) if self.controls else {}
        item["controls"] = torch.from_numpy(np.stack([maps[name] for name in self.controls]) if maps
                                            else np.zeros((0, self.size, self.size), np.float32))  # fmt: skip
        return item


class StepBatches(torch.utils.data.Sampler[list[int]]):
    """Batches of indices for steps ``start, start+1, ...``; the batch of step ``k`` depends only on ``(seed, k)``.

    So a resumed run sees exactly the batches an uninterrupted one would. With several processes
    each takes its own slice of the step's indices (rank ``r`` of ``world``).
    """

    def __init__(self, n: int, batch_size: int, seed: int, start: int, stop: int, rank: int = 0, world: int = 1):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start, self.stop, self.rank, self.world = start, stop, rank, world

    def __len__(self) -> int:
        return max(self.stop - self.start, 0)

    def __iter__(self) -> Iterator[list[int]]:
        total = self.batch_size * self.world
        for step in range(self.start, self.stop):
            rng = np.random.default_rng([self.seed, step])
            picks = np.concatenate([rng.permutation(self.n) for _ in range(-(-total // self.n))])[:total]
            yield picks[self.rank * self.batch_size : (self.rank + 1) * self.batch_size].tolist()


def collate(items: list[dict]) -> dict:
    return {
        "image": torch.stack([item["image"] for item in items]),
        "prompt": [item["prompt"] for item in items],
        "controls": torch.stack([item["controls"] for item in items]),
    }
