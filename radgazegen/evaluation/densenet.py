"""torchvision's DenseNet-BC, mirrored module for module so that its ImageNet weight files load unchanged.

torchvision cannot be installed beside the CPU build of torch this project uses, so its
``torchvision.models.densenet`` is re-implemented here with the same module names and shapes
(``features.conv0`` ... ``features.denseblock{i}.denselayer{j}.{norm1,relu1,conv1,norm2,relu2,conv2}``,
``features.transition{i}.{norm,relu,conv,pool}``, ``features.norm5``, ``classifier``), the same
initialisation, ``bn_size=4``, ``drop_rate=0`` and no memory-efficient checkpointing. A state dict
of one is a state dict of the other; ``densenet121-a639ec97.pth`` loads from a local file
(old key names such as ``denselayer1.norm.1.weight`` are renamed exactly as torchvision does).

One deliberate difference that changes no number: the ReLUs are not in place, so attribution
hooks (captum's Grad-CAM, guided backprop, DeepLift) see each layer's own output.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from radgazegen.errors import DataFormatError, MissingWeightsError
from radgazegen.presets import ClassifierSettings

BN_SIZE = 4
"""Bottleneck width factor: each dense layer's 1x1 convolution has ``BN_SIZE * growth_rate`` channels."""
_LEGACY_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)
_HEAD = "classifier."


class _DenseLayer(nn.Module):
    """BN-ReLU-Conv1x1 bottleneck, then BN-ReLU-Conv3x3 producing ``growth_rate`` new channels."""

    def __init__(self, num_input_features: int, growth_rate: int) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(num_input_features, BN_SIZE * growth_rate, kernel_size=1, stride=1, bias=False)
        self.norm2 = nn.BatchNorm2d(BN_SIZE * growth_rate)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(BN_SIZE * growth_rate, growth_rate, kernel_size=3, stride=1, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))


class _DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers, each reading the concatenation of the block input and all earlier outputs."""

    def __init__(self, num_layers: int, num_input_features: int, growth_rate: int) -> None:
        super().__init__()
        for i in range(num_layers):
            self[f"denselayer{i + 1}"] = _DenseLayer(num_input_features + i * growth_rate, growth_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


class _Transition(nn.Sequential):
    """BN-ReLU-Conv1x1 halving the channels, then 2x2 average pooling halving the resolution."""

    def __init__(self, num_input_features: int, num_output_features: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(num_input_features)
        self.relu = nn.ReLU()
        self.conv = nn.Conv2d(num_input_features, num_output_features, kernel_size=1, stride=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(nn.Module):
    """DenseNet-BC (Huang et al. 2017) as ``torchvision.models.DenseNet``: RGB ``(n, 3, H, W)`` -> logits ``(n, C)``."""

    def __init__(
        self,
        growth_rate: int = 32,
        block_config: tuple[int, ...] = (6, 12, 24, 16),
        num_init_features: int = 64,
        num_classes: int = 1000,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential()
        self.features.add_module(
            "conv0", nn.Conv2d(3, num_init_features, kernel_size=7, stride=2, padding=3, bias=False)
        )
        self.features.add_module("norm0", nn.BatchNorm2d(num_init_features))
        self.features.add_module("relu0", nn.ReLU())
        self.features.add_module("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        num_features = num_init_features
        for i, num_layers in enumerate(block_config):
            self.features.add_module(f"denseblock{i + 1}", _DenseBlock(num_layers, num_features, growth_rate))
            num_features += num_layers * growth_rate
            if i != len(block_config) - 1:
                self.features.add_module(f"transition{i + 1}", _Transition(num_features, num_features // 2))
                num_features //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(num_features))
        self.classifier = nn.Linear(num_features, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)
            elif isinstance(module, nn.Linear):
                nn.init.constant_(module.bias, 0)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate features ``(n, d)``: ReLU of ``features.norm5``, global-average-pooled."""
        return torch.flatten(F.adaptive_avg_pool2d(F.relu(self.features(x)), (1, 1)), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


def densenet(num_classes: int, settings: ClassifierSettings, weights: str | Path | None = None) -> DenseNet:
    """The DenseNet of ``settings`` with a new ``num_classes`` head, its body from ``weights`` when given.

    ``weights``: a local torchvision state dict (``.pth``, e.g. ``densenet121-a639ec97.pth`` for the
    default DenseNet-121 settings) or a ``.safetensors`` file; its ``classifier`` head is dropped.
    Raises :class:`MissingWeightsError` when the file is missing or unreadable and
    :class:`DataFormatError` when its tensors do not fit the architecture of ``settings``.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    model = DenseNet(settings.growth_rate, tuple(settings.block_config), settings.num_init_features, num_classes)
    if weights is not None:
        state = {k: v for k, v in read_state_dict(weights).items() if not k.startswith(_HEAD)}
        load_state(model, state, weights, skip=_HEAD)
    return model


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A DenseNet state dict from a ``.safetensors`` or torch pickle file, legacy key names renamed as torchvision does."""
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f"{path}: weight file not found")
    try:
        if path.suffix == ".safetensors":
            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (SafetensorError, pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError) as err:
        raise MissingWeightsError(f"{path}: unreadable weight file ({err})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataFormatError(path, "not a state dict (a mapping of parameter names to tensors)")
    renamed = {}
    for key, value in state.items():
        match = _LEGACY_KEY.match(key)
        renamed[match.group(1) + match.group(2) if match else key] = value
    return renamed


def load_state(model: nn.Module, state: dict[str, torch.Tensor], path: str | Path, *, skip: str | None = None) -> None:
    """Load ``state`` (read from ``path``) into ``model``; every key must fit except those starting with ``skip``.

    BatchNorm's ``num_batches_tracked`` may be absent (old torchvision files lack it). Raises
    :class:`DataFormatError` naming the file and a few missing, unexpected or mis-shaped keys.
    """
    own = model.state_dict()
    wrong = [f"{k} {tuple(v.shape)} (model: {tuple(own[k].shape)})" for k, v in state.items() if k in own
             and v.shape != own[k].shape]  # fmt: skip
    if wrong:
        raise DataFormatError(path, f"{len(wrong)} tensor(s) of the wrong shape for this architecture: {_few(wrong)}")
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if skip is None or not k.startswith(skip)]
    problems = [f"{len(keys)} {kind} key(s) {_few(keys)}" for kind, keys in (("missing", missing),
                ("unexpected", result.unexpected_keys)) if keys]  # fmt: skip
    if problems:
        raise DataFormatError(path, "state dict does not fit this architecture: " + "; ".join(problems))


def _few(names: list[str], shown: int = 5) -> str:
    return ", ".join(names[:shown]) + (f", ... ({len(names) - shown} more)" if len(names) > shown else "")
