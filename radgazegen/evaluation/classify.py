"""The CheXpert protocol's downstream classifier: a DenseNet on grey chest X-rays, its training and its AUROC table.

The model maps grey images ``(n, 1, S, S)`` in [0, 1] to logits; replicating the grey channel to
RGB and the ImageNet mean / standard-deviation normalisation happen inside it, so attributions
(captum) are taken with respect to the [0, 1] grey input. Multi-label findings are scored with
sigmoid probabilities and per-finding AUROC (Irvin et al. 2019); the long-tail protocol uses the
same classifier single-label (softmax, see :mod:`radgazegen.evaluation.longtail`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from tqdm.auto import tqdm

from radgazegen.errors import DataFormatError, MissingWeightsError
from radgazegen.evaluation.densenet import DenseNet, densenet, load_state, read_state_dict
from radgazegen.evaluation.stats import auroc, bootstrap
from radgazegen.io import atomic_dir, write_json_atomic
from radgazegen.presets import ClassifierSettings
from radgazegen.runs import resolve_device

Task = Literal["multilabel", "multiclass"]
TASKS: tuple[str, ...] = ("multilabel", "multiclass")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_SHIFT = 0.05
"""Training augmentation: random shift up to this share of the image side, in x and y."""
MAX_ZOOM = 0.1
"""Training augmentation: random isotropic scale in ``[1 - MAX_ZOOM, 1 + MAX_ZOOM]``. No flips: they swap laterality."""
CAM_MIN_SIDE = 4
"""The smallest Grad-CAM map side (px) taken from ``features.norm5``; see :attr:`Classifier.cam_layer`."""
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "classifier.json"


class GreyDenseNet(nn.Module):
    """Grey ``(n, 1, S, S)`` in [0, 1] -> RGB replicate -> ImageNet normalisation -> :class:`DenseNet` logits."""

    def __init__(self, net: DenseNet) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"expected grey images (n, 1, H, W), got shape {tuple(x.shape)}")
        return (x.expand(-1, 3, -1, -1) - self.mean) / self.std

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.embed(self.normalise(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalise(x))


@dataclass(eq=False)
class Classifier:
    """A trained classifier over ``classes``; ``history`` holds the mean training loss of each epoch."""

    model: GreyDenseNet
    classes: list[str]
    settings: ClassifierSettings
    task: Task = "multilabel"
    history: list[float] = field(default_factory=list)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def cam_layer(self) -> nn.Module:
        """The layer Grad-CAM hooks: ``features.norm5``, or the last dense block but one on small images.

        ``features.norm5`` is the last layer with spatial maps; the classifier reads only its ReLU,
        averaged over space, through one linear layer, so Grad-CAM on it is the class activation
        map of Zhou et al. (2016), the most class-specific map. Its side is ``S / 2^(B+1)``
        (``S / 32`` for ``B = 4`` blocks: 7 px at 224). Where that is under ``CAM_MIN_SIDE`` px
        (the CPU presets' 32-64 px images give 1-2 px), Grad-CAM hooks the output of dense block
        ``B - 1`` instead, at twice the resolution.
        """
        features, blocks = self.model.net.features, len(self.settings.block_config)
        if self.settings.image_size // 2 ** (blocks + 1) >= CAM_MIN_SIDE or blocks < 2:
            return features.norm5
        return features.get_submodule(f"denseblock{blocks - 1}")

    def inputs(self, images: np.ndarray) -> torch.Tensor:
        """Images ``(n, H, W)`` in [0, 1] as the model's input ``(n, 1, S, S)`` on its device."""
        return resize(images, self.settings.image_size).to(self.device)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities ``(n, C)``: sigmoid per finding (multilabel) or softmax over classes (multiclass)."""
        logits = self._batched(images, self.model)
        return torch.sigmoid(logits).numpy() if self.task == "multilabel" else torch.softmax(logits, 1).numpy()

    def features(self, images: np.ndarray) -> np.ndarray:
        """Penultimate features ``(n, d)``: ReLU of ``features.norm5``, global-average-pooled."""
        return self._batched(images, self.model.embed).numpy()

    def _batched(self, images: np.ndarray, function) -> torch.Tensor:
        x = resize(images, self.settings.image_size)
        self.model.eval()
        with torch.inference_mode():
            out = [function(x[i : i + self.settings.batch_size].to(self.device)).float().cpu()
                   for i in range(0, max(len(x), 1), self.settings.batch_size)]  # fmt: skip
        return torch.cat(out)

    def save(self, folder: str | Path) -> Path:
        """Write ``model.safetensors`` (torchvision DenseNet keys) and ``classifier.json`` to ``folder`` atomically."""
        folder = Path(folder)
        with atomic_dir(folder) as staging:
            state = {k: v.detach().cpu().contiguous() for k, v in self.model.net.state_dict().items()}
            save_file(state, staging / WEIGHTS_FILE)
            about = {"classes": self.classes, "settings": dataclasses.asdict(self.settings), "task": self.task,
                     "history": self.history}  # fmt: skip
            write_json_atomic(staging / CONFIG_FILE, about)
        return folder

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> Classifier:
        """A classifier written by :meth:`save`; errors name the missing or malformed file."""
        folder = Path(folder)
        config, weights = folder / CONFIG_FILE, folder / WEIGHTS_FILE
        for path in (config, weights):
            if not path.is_file():
                raise MissingWeightsError(f"{folder}: no {path.name} (not a saved classifier folder)")
        try:
            about = json.loads(config.read_text(encoding="utf-8"))
            classes, task, history = list(about["classes"]), about["task"], [float(v) for v in about["history"]]
            values = dict(about["settings"])
            settings = ClassifierSettings(**{**values, "block_config": tuple(values["block_config"])})
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as err:
            raise DataFormatError(config, f"not a classifier description ({type(err).__name__}: {err})") from None
        if task not in TASKS or not classes:
            raise DataFormatError(config, f"task must be one of {TASKS} and classes non-empty, got {task!r}, {classes}")
        net = DenseNet(settings.growth_rate, settings.block_config, settings.num_init_features, len(classes))
        load_state(net, read_state_dict(weights), weights)
        model = GreyDenseNet(net).to(resolve_device(device)).eval()
        return cls(model, classes, settings, task, history)


def resize(images: np.ndarray, size: int) -> torch.Tensor:
    """Grey images ``(n, H, W)`` in [0, 1] as a float tensor ``(n, 1, size, size)`` (bilinear, antialiased)."""
    array = np.asarray(images, dtype=np.float32)
    if array.ndim != 3:
        raise ValueError(f"images must be an array (n, H, W), got shape {array.shape}")
    if array.size and not (np.isfinite(array).all() and array.min() >= 0 and array.max() <= 1):
        raise ValueError(f"images must be finite and lie in [0, 1], got range [{array.min()}, {array.max()}]")
    x = torch.from_numpy(array).unsqueeze(1)
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def train_classifier(
    images: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    settings: ClassifierSettings,
    *,
    task: Task = "multilabel",
    class_weights: np.ndarray | None = None,
    seed: int = 0,
    weights: str | Path | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> Classifier:
    """Train the DenseNet of ``settings`` on images ``(n, H, W)`` in [0, 1].

    ``multilabel``: ``labels`` is 0/1 ``(n, C)``, loss binary cross-entropy with logits;
    ``class_weights`` (``(C,)``) are its ``pos_weight``, the weight of each finding's positives.
    ``multiclass``: ``labels`` is class indices ``(n,)``, loss cross-entropy; ``class_weights``
    weight each class (e.g. :func:`radgazegen.evaluation.longtail.class_balanced_weights`).
    AdamW with a cosine learning-rate decay over all steps; each batch is randomly shifted
    (up to ``MAX_SHIFT``) and zoomed (``MAX_ZOOM``), never flipped. ``weights``: torchvision's
    ImageNet state dict as a local file (the body starts from it). Deterministic for a ``seed`` on CPU.
    """
    classes = list(classes)
    x = resize(images, settings.image_size)
    y = _targets(labels, len(x), len(classes), task)
    if len(x) < 2:
        raise ValueError(f"training needs at least 2 images, got {len(x)}")
    device = resolve_device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GreyDenseNet(densenet(len(classes), settings, weights)).to(device)
    generator = torch.Generator().manual_seed(seed)
    loss_fn = _loss(task, class_weights, len(classes)).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    steps = math.ceil(len(x) / settings.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=settings.epochs * steps)
    history: list[float] = []
    bar = tqdm(range(settings.epochs), desc="classifier", unit="epoch", disable=not progress)
    model.train()
    for _ in bar:
        total = 0.0
        for rows in torch.tensor_split(torch.randperm(len(x), generator=generator), steps):  # no batch of one
            batch = augment(x[rows], generator).to(device)
            loss = loss_fn(model(batch), y[rows].to(device))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(rows)
        history.append(total / len(x))
        bar.set_postfix(loss=f"{history[-1]:.4f}")
    return Classifier(model.eval(), classes, settings, task, history)


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random affine shift and isotropic zoom of each image ``(n, 1, S, S)``; borders are replicated."""
    n = len(x)
    scale = 1 + MAX_ZOOM * (2 * torch.rand(n, generator=generator) - 1)
    shift = 2 * MAX_SHIFT * (2 * torch.rand(n, 2, generator=generator) - 1)  # normalised coordinates span 2
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _targets(labels: np.ndarray, n: int, n_classes: int, task: str) -> torch.Tensor:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    labels = np.asarray(labels)
    if len(labels) != n:
        raise ValueError(f"{n} images but {len(labels)} labels")
    if task == "multilabel":
        if labels.shape != (n, n_classes) or not np.isin(labels, (0, 1)).all():
            raise ValueError(f"multilabel labels must be 0/1 of shape ({n}, {n_classes}), got shape {labels.shape}")
        return torch.as_tensor(labels, dtype=torch.float32)
    if labels.ndim != 1 or not np.isin(labels, np.arange(n_classes)).all():
        raise ValueError(f"multiclass labels must be class indices 0..{n_classes - 1} of shape ({n},)")
    return torch.as_tensor(labels.astype(np.int64))


def _loss(task: str, class_weights: np.ndarray | None, n_classes: int) -> nn.Module:
    weights = None
    if class_weights is not None:
        weights = torch.as_tensor(np.asarray(class_weights, np.float32))
        if weights.shape != (n_classes,) or not (torch.isfinite(weights).all() and (weights > 0).all()):
            raise ValueError(f"class_weights must be {n_classes} positive finite numbers, got {class_weights}")
    return nn.BCEWithLogitsLoss(pos_weight=weights) if task == "multilabel" else nn.CrossEntropyLoss(weight=weights)


def auroc_table(
    labels: np.ndarray, scores: np.ndarray, classes: Sequence[str], n_boot: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Per-finding AUROC with bootstrap 95% intervals, and a final ``mean`` row.

    Index: the findings, then ``mean``; columns ``auroc, low, high, positives``. A finding
    without both positives and negatives in the test set has NaN AUROC and is left out of the
    mean; the mean's interval bootstraps the mean over the findings defined in each resample.
    ``positives`` of the mean row is the total over findings.
    """
    labels, scores = np.asarray(labels), np.asarray(scores, np.float64)
    classes = list(classes)
    if labels.shape != scores.shape or labels.ndim != 2 or labels.shape[1] != len(classes):
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} must both be (n, {len(classes)})")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0/1")
    rows = []
    for c in range(len(classes)):
        estimate = bootstrap(lambda y, s: auroc(y[:, None], s[:, None])[0], labels[:, c], scores[:, c], n_boot=n_boot,
                             seed=seed)  # fmt: skip
        rows.append((estimate.value, estimate.low, estimate.high, int(labels[:, c].sum())))
    mean = bootstrap(mean_auroc, labels, scores, n_boot=n_boot, seed=seed)
    rows.append((mean.value, mean.low, mean.high, int(labels.sum())))
    return pd.DataFrame(rows, index=pd.Index([*classes, "mean"], name="finding"),
                        columns=["auroc", "low", "high", "positives"])  # fmt: skip


def mean_auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mean AUROC over the findings (columns) with both classes; NaN when none has."""
    areas = auroc(labels, scores)
    return float(np.nanmean(areas)) if np.isfinite(areas).any() else float("nan")


def chexpert_targets(table: pd.DataFrame, classes: Sequence[str]) -> np.ndarray:
    """The 0/1 label matrix ``(n, C)`` of ``classes`` from a table of :func:`radgazegen.data.labels.read_chexpert_labels`."""
    missing = [c for c in classes if c not in table.columns]
    if missing:
        raise KeyError(f"label table lacks class column(s) {missing}; it has {list(table.columns)}")
    values = table[list(classes)].to_numpy()
    if not np.isin(values, (0, 1)).all():
        raise ValueError("label columns must hold 0/1 (read them with read_chexpert_labels, which applies the policy)")
    return values.astype(np.uint8).reshape(len(table), len(classes))
