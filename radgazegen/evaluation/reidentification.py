r"""A patient re-identification network from a local file: CheXGenBench's Siamese ResNet-50.

CheXGenBench (Dutt et al. 2025) scores whether a synthetic radiograph shows a training patient with the Siamese
network of Packhäuser et al. (2022, "Deep learning-based patient re-identification is able to exploit the
biometric nature of medical chest X-ray data"): a torchvision ResNet-50 whose classifier is replaced by a
2048 → 128 linear layer, features :math:`f(x) = \sigma(\mathrm{ResNet}(x))`, and for two images the score
:math:`p(a, b) = \sigma(w^\top |f(a) - f(b)| + c)`, the probability that they show one patient. Inputs are
8-bit RGB images resized to 224 x 224 and scaled to [0, 1] (``transforms.Resize((224, 224))``,
``ToTensor()``, no normalisation), as its ``privacy_metrics.py`` prepares them.

torchvision cannot be installed beside this project's CPU torch, so its ResNet-50 is mirrored here module for
module (``conv1``, ``bn1``, ``layer1``-``layer4`` of ``Bottleneck`` blocks with ``downsample.0/1``, ``fc``), as
:mod:`radgazegen.evaluation.densenet` mirrors DenseNet: the checkpoint's state dict (``model.*``, ``fc_end.*``)
loads unchanged. Nothing is downloaded; the user passes the checkpoint as a local file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from radgazegen.data.images import grey_levels8
from radgazegen.errors import DataFormatError, MissingWeightsError
from radgazegen.evaluation.densenet import load_state, read_state_dict

INPUT_SIZE = 224
FEATURES = 128
MAX_FILE_BYTES = 2**31
"""The largest checkpoint read (a ResNet-50 Siamese network is ~100 MB); a bigger file is refused before it is read."""


class _Bottleneck(nn.Module):
    """torchvision's ``Bottleneck``: 1x1, 3x3 (stride here), 1x1 convolutions, 4x expansion, identity or projection."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != planes * 4:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes * 4, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(planes * 4))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet50(nn.Module):
    """torchvision's ``resnet50`` with an ``out_features``-wide ``fc`` (layers 3, 4, 6, 3)."""

    def __init__(self, out_features: int = 1000, in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = 64
        for index, (planes, blocks, stride) in enumerate(((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)), start=1):
            layer = [_Bottleneck(inplanes, planes, stride)] + [_Bottleneck(planes * 4, planes) for _ in range(blocks - 1)]
            setattr(self, f"layer{index}", nn.Sequential(*layer))
            inplanes = planes * 4
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2048, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class SiameseNetwork(nn.Module):
    """The re-identification network: ``model`` (ResNet-50, ``fc`` 2048 → 128) and ``fc_end`` (128 → 1)."""

    def __init__(self, in_channels: int = 3, n_features: int = FEATURES) -> None:
        super().__init__()
        self.model = ResNet50(n_features, in_channels)
        self.fc_end = nn.Linear(n_features, 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`f(x) = \sigma(\mathrm{ResNet}(x))` ``(n, 128)``."""
        return torch.sigmoid(self.model(x))

    def score(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        r""":math:`\sigma(w^\top |a_i - b_j| + c)` ``(n_a, n_b)`` for two sets of features."""
        return torch.sigmoid(self.fc_end((a[:, None] - b[None]).abs())).squeeze(-1)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The logit of one patient for image pairs ``(a_i, b_i)``, as CheXGenBench's ``SiameseNetwork.forward``."""
        return self.fc_end((self.embed(a) - self.embed(b)).abs())


class SiameseReidentifier:
    """CheXGenBench's re-identification network loaded from a local ``.pth`` / ``.safetensors`` state dict.

    :meth:`embed` maps grey images ``(n, H, W)`` in [0, 1] to features; :meth:`similarity` scores every pair of two
    feature sets (the probability of one patient). A missing, unreadable or oversized file is a
    :class:`~radgazegen.errors.MissingWeightsError`, a state dict of another architecture a
    :class:`~radgazegen.errors.DataFormatError` naming the file.
    """

    def __init__(self, path: str | Path, device: str | torch.device = "cpu", batch_size: int = 16) -> None:
        path = Path(path)
        if not path.is_file():
            raise MissingWeightsError(f"{path}: re-identification checkpoint not found")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise MissingWeightsError(f"{path}: {path.stat().st_size} bytes, more than a Siamese ResNet-50 "
                                      f"checkpoint can be ({MAX_FILE_BYTES})")  # fmt: skip
        state = read_state_dict(path)
        first = state.get("model.conv1.weight")
        if first is None or first.ndim != 4:
            raise DataFormatError(path, "not a Siamese ResNet-50 state dict (no 'model.conv1.weight')")
        self.network = SiameseNetwork(in_channels=int(first.shape[1]))
        load_state(self.network, state, path)
        self.device, self.batch_size = torch.device(device), int(batch_size)
        self.network.to(self.device).eval()

    def prepare(self, images: np.ndarray) -> torch.Tensor:
        """``(n, C, 224, 224)`` in [0, 1]: 8-bit grey values, repeated to the network's channels, resized bilinearly."""
        array = np.asarray(images, np.float64)
        if array.ndim != 3 or not np.isfinite(array).all() or array.min(initial=0) < 0 or array.max(initial=0) > 1:
            raise ValueError(f"images must be (n, H, W) with finite values in [0, 1], got shape {array.shape}")
        x = torch.from_numpy(grey_levels8(array) / 255).float()[:, None]
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=True)
        return x.clamp(0, 1).repeat(1, self.network.model.conv1.in_channels, 1, 1)

    @torch.no_grad()
    def embed(self, images: np.ndarray) -> np.ndarray:
        """Features ``(n, 128)`` of grey images ``(n, H, W)`` in [0, 1]."""
        x = self.prepare(images)
        parts = [self.network.embed(x[k : k + self.batch_size].to(self.device)).cpu()
                 for k in range(0, len(x), self.batch_size)]  # fmt: skip
        return torch.cat(parts).numpy().astype(np.float64) if parts else np.zeros((0, FEATURES))

    @torch.no_grad()
    def similarity(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The one-patient probability of every pair of features ``(n_a, 128)`` x ``(n_b, 128)``: ``(n_a, n_b)``."""
        fa, fb = (torch.as_tensor(np.asarray(f), dtype=torch.float32, device=self.device) for f in (a, b))
        rows = [self.network.score(fa[k : k + 16], fb).cpu() for k in range(0, len(fa), 16)]  # 16 x n_b x 128 floats
        return torch.cat(rows).numpy().astype(np.float64) if rows else np.zeros((0, len(fb)))
