r"""A small UNet that locates findings in (phantom) radiographs, to score where generated findings appear.

Three levels (``width``, ``2 width``, ``4 width`` channels; two 3x3 conv + batch norm + ReLU per level,
2x2 max pooling down, 2x2 transposed convolution up, skip connections), 66k parameters at the
default ``width=12``. Trained on images in [0, 1] against binary finding masks with the sum of binary cross
entropy and soft Dice loss over each batch,
:math:`\mathcal{L} = -\frac{1}{N}\sum_i [t_i \log p_i + (1 - t_i)\log(1 - p_i)]
+ 1 - \frac{2\sum_i p_i t_i + 1}{\sum_i p_i + \sum_i t_i + 1}`, with Adam.

Training and prediction run torch with one intra-op thread and channels-last tensors: at these sizes
more threads mostly add synchronisation, which makes training several times slower on a busy
2-core machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from radgazegen.errors import DataFormatError, MissingWeightsError
from radgazegen.io import atomic_dir
from radgazegen.threads import torch_threads

WEIGHTS, CONFIG = "segmenter.safetensors", "segmenter.json"
FORMAT = "radgazegen.FindingSegmenter"


def _block(channels_in: int, channels_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(inplace=True),
    )


class FindingSegmenter(nn.Module):
    """Three-level UNet: (n, 1, S, S) images in [0, 1] -> (n, 1, S, S) finding logits (any S)."""

    def __init__(self, width: int = 12) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be a positive number of channels, got {width}")
        self.width = width
        self.down1, self.down2, self.bottom = _block(1, width), _block(width, 2 * width), _block(2 * width, 4 * width)
        self.up2, self.up1 = nn.ConvTranspose2d(4 * width, 2 * width, 2, 2), nn.ConvTranspose2d(2 * width, width, 2, 2)
        self.dec2, self.dec1 = _block(4 * width, 2 * width), _block(2 * width, width)
        self.head = nn.Conv2d(width, 1, 1)
        self.to(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[-2:]
        padded = F.pad(images - 0.5, (0, -width % 4, 0, -height % 4), mode="replicate")
        first = self.down1(padded)
        second = self.down2(F.max_pool2d(first, 2))
        bottom = self.bottom(F.max_pool2d(second, 2))
        second = self.dec2(torch.cat([self.up2(bottom), second], 1))
        first = self.dec1(torch.cat([self.up1(second), first], 1))
        return self.head(first)[..., :height, :width]

    @torch.no_grad()
    def predict(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """(n, S, S) finding probabilities of (n, S, S) images in [0, 1] (eval mode, no gradients)."""
        images = _check_images(images)
        self.eval()
        device = next(self.parameters()).device
        with torch_threads(1):
            parts = [
                torch.sigmoid(self(_batch(images[k : k + batch_size], device)))[:, 0].cpu().numpy()
                for k in range(0, len(images), batch_size)
            ]
        return np.concatenate(parts)

    def masks(self, images: np.ndarray, threshold: float = 0.5) -> np.ndarray:
        """(n, S, S) bool: the pixels whose finding probability is at least ``threshold``."""
        return self.predict(images) >= threshold

    def save(self, folder: str | Path) -> Path:
        """Write ``segmenter.safetensors`` and ``segmenter.json`` to ``folder`` (replaced atomically); returns it."""
        folder = Path(folder)
        with atomic_dir(folder) as staging:
            state = {name: tensor.detach().cpu().contiguous() for name, tensor in self.state_dict().items()}
            save_file(state, staging / WEIGHTS)
            (staging / CONFIG).write_text(json.dumps({"format": FORMAT, "width": self.width}, indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> FindingSegmenter:
        """A segmenter written by :meth:`save`, in eval mode; errors name the missing or malformed file."""
        folder = Path(folder)
        for name in (CONFIG, WEIGHTS):
            if not (folder / name).is_file():
                raise MissingWeightsError(f"{folder}: missing {name} (not a saved FindingSegmenter)")
        try:
            config = json.loads((folder / CONFIG).read_text())
        except json.JSONDecodeError as error:
            raise DataFormatError(folder / CONFIG, f"not valid JSON ({error})") from error
        if not isinstance(config, dict) or config.get("format") != FORMAT or not isinstance(config.get("width"), int):
            raise DataFormatError(folder / CONFIG, f"expected {{'format': {FORMAT!r}, 'width': <int>}}, got {config!r}")
        model = cls(config["width"])
        try:
            model.load_state_dict(load_file(folder / WEIGHTS))
        except (RuntimeError, OSError) as error:
            raise DataFormatError(
                folder / WEIGHTS, f"weights do not fit a width-{model.width} segmenter: {error}"
            ) from error
        return model.eval()


def train_segmenter(
    images: np.ndarray,
    masks: np.ndarray,
    epochs: int,
    batch_size: int = 16,
    lr: float = 2e-3,
    seed: int = 0,
    *,
    width: int = 12,
    progress: bool = True,
) -> FindingSegmenter:
    """Train a :class:`FindingSegmenter` on (n, S, S) images in [0, 1] and their (n, S, S) binary finding masks.

    Deterministic on the CPU for a given ``seed`` (initial weights and batch order; the global torch
    random state is left as it was). Returns the model in eval mode.
    """
    images = _check_images(images)
    masks = np.asarray(masks, dtype=np.float32)
    if masks.shape != images.shape:
        raise ValueError(f"masks {masks.shape} and images {images.shape} differ in shape")
    if not np.isfinite(masks).all() or masks.min() < 0 or masks.max() > 1:
        raise ValueError("masks must be binary (or soft targets in [0, 1])")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive, got {epochs} and {batch_size}")
    inputs, targets = _batch(images), _batch(masks)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FindingSegmenter(width)
    order = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    epochs_bar = tqdm(range(epochs), desc="segmenter", unit="epoch", disable=not progress)
    with torch_threads(1):
        for _ in epochs_bar:
            for batch in torch.randperm(len(inputs), generator=order).split(batch_size):
                logits = model(inputs[batch])
                loss = F.binary_cross_entropy_with_logits(logits, targets[batch]) + dice_loss(logits, targets[batch])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
            epochs_bar.set_postfix(loss=f"{loss.item():.3f}")
    return model.eval()


def dice_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    r"""Soft Dice loss over the whole batch, :math:`1 - (2\sum p t + 1) / (\sum p + \sum t + 1)`.

    :math:`p = \sigma(\text{logits})` and :math:`t` the targets in [0, 1].
    """
    probabilities = torch.sigmoid(logits)
    return 1 - (2 * (probabilities * targets).sum() + 1) / (probabilities.sum() + targets.sum() + 1)


def _batch(maps: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(n, S, S) array -> (n, 1, S, S) channels-last float tensor."""
    return torch.from_numpy(maps[:, None]).to(device).contiguous(memory_format=torch.channels_last)


def _check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3 or 0 in images.shape:
        raise ValueError(f"images must be a non-empty (n, S, S) stack, got shape {images.shape}")
    if not np.isfinite(images).all() or images.min() < 0 or images.max() > 1:
        raise ValueError("images must be finite and in [0, 1]")
    return np.ascontiguousarray(images)
