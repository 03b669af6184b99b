r"""Image-quality metrics for generated chest X-rays: feature distances, structural similarity, text-image agreement.

- :func:`frechet_distance` (FID when the features are Inception's) and :func:`kernel_inception_distance` (KID)
  of two feature sets, computed in float64;
- :func:`ssim` and :func:`ms_ssim` per image pair, with torchmetrics' definitions;
- feature extractors: any callable mapping ``(n, H, W)`` images in [0, 1] to ``(n, d)`` features
  (:class:`FeatureExtractor`), e.g. :class:`TorchScriptFeatures` for the standard FID Inception-v3 network;
- :func:`clip_score` with a CLIP model from a local folder, and :func:`finding_agreement`, the offline
  text-image agreement used when no CLIP is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from radgazegen.errors import MissingWeightsError
from radgazegen.evaluation.stats import auroc

SSIM_WINDOW = 11
"""Side of the Gaussian window of SSIM (torchmetrics: ``int(3.5 * sigma + 0.5) * 2 + 1`` with sigma 1.5)."""
SSIM_SIGMA, SSIM_K1, SSIM_K2 = 1.5, 0.01, 0.03
MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
"""Weights of the five scales of MS-SSIM (Wang et al. 2003), finest first."""
FID_CALL_KWARGS: Mapping[str, Any] = MappingProxyType({"return_features": True})
"""Keyword arguments with which the FID Inception network (clean-fid / StyleGAN TorchScript) returns its 2048 features."""


def gaussian_frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    r"""Fréchet distance of two Gaussians, in float64 and never NaN, complex or negative.

    :math:`d^2 = \lVert\mu_1 - \mu_2\rVert^2 + \operatorname{Tr}\Sigma_1 + \operatorname{Tr}\Sigma_2
    - 2\operatorname{Tr}(\Sigma_1\Sigma_2)^{1/2}`, with
    :math:`\operatorname{Tr}(\Sigma_1\Sigma_2)^{1/2} = \sum_i \sqrt{\max(\lambda_i, 0)}`, :math:`\lambda_i` the
    eigenvalues of the symmetric :math:`A\Sigma_2A`, :math:`A = \Sigma_1^{1/2}` (similar to
    :math:`\Sigma_1\Sigma_2`). Both square roots use symmetric eigen-decompositions with negative rounding
    eigenvalues clipped to zero, so singular (rank-deficient) covariances are fine.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    cov1, cov2 = np.atleast_2d(np.asarray(cov1, np.float64)), np.atleast_2d(np.asarray(cov2, np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or cov1.shape != (d, d) or cov2.shape != (d, d):
        raise ValueError(
            f"means must be (d,) and covariances (d, d) with one d, got {mu1.shape}, {cov1.shape}, {mu2.shape}, {cov2.shape}"
        )
    root = _psd_sqrt(cov1)
    middle = root @ cov2 @ root
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
    diff = mu1 - mu2
    return max(float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_sqrt), 0.0)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (negative eigenvalues taken as 0)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(real_features: np.ndarray, fake_features: np.ndarray) -> float:
    r"""Fréchet distance of Gaussians fitted to two feature sets ``(n, d)``: FID when the features are Inception's.

    Means and unbiased covariances (:math:`n - 1`) in float64, then :func:`gaussian_frechet_distance`.
    """
    real, fake = _feature_pair(real_features, fake_features, minimum=2)
    return gaussian_frechet_distance(real.mean(0), np.cov(real, rowvar=False), fake.mean(0), np.cov(fake, rowvar=False))


def kernel_inception_distance(
    real_features: np.ndarray, fake_features: np.ndarray, subset_size: int = 1000, subsets: int = 100, seed: int = 0
) -> tuple[float, float]:
    r"""KID as torchmetrics defines it: mean and standard deviation over random subsets of the unbiased MMD².

    Kernel :math:`k(x, y) = (x^\top y / d + 1)^3`. Each subset takes :math:`m = \min(\text{subset\_size},
    n_\text{real}, n_\text{fake})` rows of each set without replacement (``torch.randperm`` of the real set,
    then of the fake set, from a generator seeded with ``seed``: the subsets torchmetrics draws after
    ``torch.manual_seed(seed)``) and scores

    .. math:: \frac{1}{m(m-1)}\sum_{i\ne j}\bigl(k(x_i, x_j) + k(y_i, y_j)\bigr) - \frac{2}{m^2}\sum_{i,j}k(x_i, y_j).

    The standard deviation is the population one (torchmetrics' ``std(unbiased=False)``). Computed in float64.
    """
    real, fake = _feature_pair(real_features, fake_features, minimum=2)
    if isinstance(subset_size, bool) or not isinstance(subset_size, int) or subset_size < 2:
        raise ValueError(f"subset_size must be an integer >= 2, got {subset_size!r}")
    if isinstance(subsets, bool) or not isinstance(subsets, int) or subsets < 1:
        raise ValueError(f"subsets must be a positive integer, got {subsets!r}")
    m = min(subset_size, len(real), len(fake))
    gamma = 1.0 / real.shape[1]
    k_rr, k_ff, k_rf = ((a @ b.T * gamma + 1.0) ** 3 for a, b in ((real, real), (fake, fake), (real, fake)))
    generator = torch.Generator().manual_seed(seed)
    scores = []
    for _ in range(subsets):
        r = torch.randperm(len(real), generator=generator)[:m].numpy()
        f = torch.randperm(len(fake), generator=generator)[:m].numpy()
        same = _off_diagonal_sum(k_rr[np.ix_(r, r)]) + _off_diagonal_sum(k_ff[np.ix_(f, f)])
        scores.append(same / (m * (m - 1)) - 2.0 * k_rf[np.ix_(r, f)].sum() / m**2)
    return float(np.mean(scores)), float(np.std(scores))


def _off_diagonal_sum(matrix: np.ndarray) -> float:
    return float(matrix.sum() - np.trace(matrix))


def _feature_pair(real: np.ndarray, fake: np.ndarray, minimum: int) -> tuple[np.ndarray, np.ndarray]:
    """Both feature sets as float64 ``(n, d)`` arrays with at least ``minimum`` rows and one ``d``, else a ``ValueError``."""
    arrays = []
    for name, features in (("real_features", real), ("fake_features", fake)):
        array = np.asarray(features, np.float64)
        if array.ndim != 2:
            raise ValueError(f"{name} must be 2-D (samples, features), got shape {array.shape}")
        if len(array) < minimum:
            raise ValueError(f"{name} needs at least {minimum} samples, got {len(array)}")
        if not np.isfinite(array).all():
            raise ValueError(f"{name} has non-finite values")
        arrays.append(array)
    if arrays[0].shape[1] != arrays[1].shape[1]:
        raise ValueError(f"feature dimensions differ: real {arrays[0].shape[1]}, fake {arrays[1].shape[1]}")
    return arrays[0], arrays[1]


def ssim(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor, data_range: float = 1.0) -> np.ndarray:
    r"""SSIM of each image pair, as torchmetrics' ``structural_similarity_index_measure(reduction="none")``.

    Images ``(n, H, W)`` or ``(n, 1, H, W)``, at least 11 px a side. Local statistics use an 11 x 11 Gaussian
    window (:math:`\sigma = 1.5`) on the image reflect-padded by 5 px;
    :math:`\text{SSIM} = \frac{(2\mu_a\mu_b + C_1)(2\sigma_{ab} + C_2)}{(\mu_a^2 + \mu_b^2 + C_1)(\sigma_a^2 + \sigma_b^2 + C_2)}`
    with :math:`C_i = (k_i L)^2`, :math:`k_1 = 0.01`, :math:`k_2 = 0.03`, :math:`L` = ``data_range``, averaged
    over all pixels. Computed in float64.
    """
    x, y = _image_pair(a, b, data_range)
    return _similarity_and_contrast(x, y, data_range)[0].numpy()


def ms_ssim(
    a: np.ndarray | torch.Tensor,
    b: np.ndarray | torch.Tensor,
    data_range: float = 1.0,
    betas: Sequence[float] | None = None,
) -> np.ndarray:
    r"""Multi-scale SSIM of each image pair, as torchmetrics' ``multiscale_structural_similarity_index_measure``.

    :math:`\prod_{s < S-1} \mathrm{relu}(cs_s)^{\beta_s} \cdot \mathrm{relu}(\text{SSIM}_{S-1})^{\beta_{S-1}}`
    over :math:`S` = ``len(betas)`` scales, each 2 x 2 average-pooled from the previous one; :math:`cs_s`
    is the contrast-structure term :math:`\frac{2\sigma_{ab} + C_2}{\sigma_a^2 + \sigma_b^2 + C_2}` averaged
    away from the 5 px reflected border, the relu is torchmetrics' default ``normalize="relu"``.

    Every scale must be at least 11 px a side (the window), so the five standard betas
    (:data:`MS_SSIM_BETAS`) need images of 176 px. With ``betas=None`` images that large get the standard
    five; smaller ones get the leading standard betas for as many scales as fit (2 for 22-43 px, 3 for
    44-87 px, 4 for 88-175 px), renormalised to sum 1. Explicit ``betas`` are used as given.
    """
    x, y = _image_pair(a, b, data_range)
    fitting = (min(x.shape[-2:]) // SSIM_WINDOW).bit_length()  # scales s with min(H, W) // 2**s >= the window
    if betas is None:
        chosen = np.array(MS_SSIM_BETAS[:fitting])
        weights = chosen if fitting >= len(MS_SSIM_BETAS) else chosen / chosen.sum()
    else:
        weights = np.asarray(betas, np.float64)
        if weights.ndim != 1 or len(weights) == 0 or not np.isfinite(weights).all():
            raise ValueError(f"betas must be a non-empty sequence of finite numbers, got {betas!r}")
        if len(weights) > fitting:
            raise ValueError(
                f"{len(weights)} scales need images of at least {SSIM_WINDOW * 2 ** (len(weights) - 1)} px a side, "
                f"got {tuple(x.shape[-2:])}"
            )
    terms = []
    for scale in range(len(weights)):
        if scale:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        similarity, contrast = _similarity_and_contrast(x, y, data_range)
        terms.append(contrast)
    terms[-1] = similarity
    stacked = torch.relu(torch.stack(terms))
    return torch.prod(stacked ** torch.as_tensor(weights)[:, None], 0).numpy()


def _image_pair(
    a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor, data_range: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two image batches as float64 ``(n, 1, H, W)`` CPU tensors of one shape, checked."""
    if not (isinstance(data_range, int | float) and np.isfinite(data_range) and data_range > 0):
        raise ValueError(f"data_range must be a positive number, got {data_range!r}")
    pair = []
    for name, images in (("a", a), ("b", b)):
        tensor = images.detach().cpu() if isinstance(images, torch.Tensor) else torch.from_numpy(np.asarray(images))
        tensor = tensor.to(torch.float64)
        if tensor.ndim == 3:
            tensor = tensor[:, None]
        if tensor.ndim != 4 or tensor.shape[1] != 1:
            raise ValueError(f"{name} must be grey images (n, H, W) or (n, 1, H, W), got shape {tuple(tensor.shape)}")
        pair.append(tensor)
    if pair[0].shape != pair[1].shape:
        raise ValueError(f"image batches differ in shape: {tuple(pair[0].shape)} vs {tuple(pair[1].shape)}")
    if min(pair[0].shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"images must be at least {SSIM_WINDOW} px a side, got {tuple(pair[0].shape[-2:])}")
    return pair[0], pair[1]


def _similarity_and_contrast(x: torch.Tensor, y: torch.Tensor, data_range: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pair: SSIM averaged over the whole image, contrast-structure term averaged inside the padding border.

    The Gaussian window is applied as two 1-D convolutions (it is separable), equal to torchmetrics' 2-D one up to rounding.
    """
    pad = SSIM_WINDOW // 2
    offsets = torch.arange(SSIM_WINDOW, dtype=torch.float64) - pad
    gauss = torch.exp(-((offsets / SSIM_SIGMA) ** 2) / 2)
    gauss = gauss / gauss.sum()
    padded = torch.cat([F.pad(t, (pad, pad, pad, pad), mode="reflect") for t in (x, y, x * x, y * y, x * y)])
    mu_x, mu_y, xx, yy, xy = F.conv2d(F.conv2d(padded, gauss.view(1, 1, -1, 1)), gauss.view(1, 1, 1, -1)).split(len(x))
    var_x = torch.clamp(xx - mu_x**2, min=0.0)
    var_y = torch.clamp(yy - mu_y**2, min=0.0)
    cov = xy - mu_x * mu_y
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    contrast = (2 * cov + c2) / (var_x + var_y + c2)
    similarity = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1) * contrast
    inner = contrast[..., pad:-pad, pad:-pad]
    return similarity.flatten(1).mean(1), inner.flatten(1).mean(1)


class FeatureExtractor(Protocol):
    """Maps grey images ``(n, H, W)`` float in [0, 1] to features ``(n, d)``."""

    def __call__(self, images: np.ndarray) -> np.ndarray: ...


class TorchScriptFeatures:
    """A TorchScript feature network loaded from a local file (e.g. the standard FID Inception-v3).

    The FID network of clean-fid / StyleGAN (``pt_inception-2015-12-05-6726825d.pth`` or
    ``inception-2015-12-05.pt``) is distributed this way: it takes ``(n, 3, 299, 299)`` floats in [0, 255] and
    ``return_features=True`` gives the 2048 pool features. Grey images in [0, 1] are repeated to 3 channels,
    bilinearly resized (``align_corners=False``, no antialiasing) to ``input_size`` and mapped linearly onto
    ``value_range``; the network is called with ``call_kwargs`` on batches of ``batch_size``.
    """

    def __init__(
        self,
        path: str | Path,
        input_size: int = 299,
        value_range: tuple[float, float] = (0.0, 255.0),
        call_kwargs: Mapping[str, Any] = FID_CALL_KWARGS,
        batch_size: int = 32,
        device: str | torch.device = "cpu",
    ) -> None:
        if batch_size < 1 or input_size < 1:
            raise ValueError(f"batch_size and input_size must be positive, got {batch_size} and {input_size}")
        self.path = Path(path)
        if not self.path.is_file():
            raise MissingWeightsError(f"{self.path}: TorchScript feature network not found")
        try:
            self.network = torch.jit.load(str(self.path), map_location=device).eval()
        except (RuntimeError, ValueError) as err:
            raise MissingWeightsError(
                f"{self.path}: not a TorchScript archive ({str(err).splitlines()[0]}); "
                "save a scripted or traced network with torch.jit.save"
            ) from None
        self.input_size, self.value_range, self.batch_size = int(input_size), value_range, int(batch_size)
        self.call_kwargs, self.device = dict(call_kwargs), torch.device(device)

    def prepare(self, images: np.ndarray) -> torch.Tensor:
        """The network's input for grey images ``(n, H, W)`` in [0, 1]: ``(n, 3, input_size, input_size)`` float32."""
        array = np.asarray(images, np.float32)
        if array.ndim != 3:
            raise ValueError(f"images must be (n, H, W), got shape {array.shape}")
        if not (np.isfinite(array).all() and array.min(initial=0) >= 0 and array.max(initial=0) <= 1):
            raise ValueError("images must hold finite values in [0, 1]")
        x = torch.from_numpy(array)[:, None]
        if tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        low, high = self.value_range
        return (low + (high - low) * x).repeat(1, 3, 1, 1)

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Features ``(n, d)`` float64 of grey images ``(n, H, W)`` in [0, 1]."""
        inputs = self.prepare(images)
        batches = [
            self.network(inputs[start : start + self.batch_size].to(self.device), **self.call_kwargs)
            for start in range(0, len(inputs), self.batch_size)
        ]
        return torch.cat(batches).flatten(1).cpu().numpy().astype(np.float64)


def clip_score(images: np.ndarray, prompts: Sequence[str], clip_dir: str | Path, batch_size: int = 16) -> np.ndarray:
    r"""CLIP score of each image and its prompt: :math:`100 \max(\cos(E_I, E_T), 0)`, as torchmetrics' ``CLIPScore``.

    ``clip_dir`` is a local folder holding a ``transformers`` ``CLIPModel`` and its ``CLIPProcessor``
    (``save_pretrained``); nothing is downloaded. Grey images ``(n, H, W)`` in [0, 1] are given to the
    processor as 8-bit RGB tensors ``(3, H, W)`` (values rounded to 0-255, channels repeated), as
    torchmetrics passes image tensors; prompts longer than the text model's positions are truncated.
    """
    array = np.asarray(images, np.float64)
    if array.ndim != 3:
        raise ValueError(f"images must be (n, H, W), got shape {array.shape}")
    if len(prompts) != len(array):
        raise ValueError(f"{len(array)} images but {len(prompts)} prompts")
    model, processor = _load_clip(Path(clip_dir))
    pixels = torch.from_numpy(np.round(np.clip(array, 0.0, 1.0) * 255).astype(np.uint8))[:, None].repeat(1, 3, 1, 1)
    max_length = model.config.text_config.max_position_embeddings
    scores = []
    with torch.no_grad():
        for start in range(0, len(array), batch_size):
            stop = start + batch_size
            image_inputs = processor(images=list(pixels[start:stop]), return_tensors="pt")
            text_inputs = processor(
                text=list(prompts[start:stop]),
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=max_length,
            )
            image = _embedding(model.get_image_features(pixel_values=image_inputs["pixel_values"]))
            text = _embedding(
                model.get_text_features(
                    input_ids=text_inputs["input_ids"], attention_mask=text_inputs["attention_mask"]
                )
            )
            scores.append(100 * (image * text).sum(-1))
    return torch.clamp(torch.cat(scores), min=0.0).numpy().astype(np.float64)


def _load_clip(folder: Path) -> tuple[Any, Any]:
    from transformers import CLIPModel, CLIPProcessor

    if not folder.is_dir():
        raise MissingWeightsError(
            f"{folder}: CLIP folder not found (a CLIPModel and CLIPProcessor saved with save_pretrained)"
        )
    try:
        model = CLIPModel.from_pretrained(folder, local_files_only=True).eval()
        processor = CLIPProcessor.from_pretrained(folder, local_files_only=True)
    except OSError as err:
        raise MissingWeightsError(f"{folder}: no readable CLIP model and processor ({err})") from None
    return model, processor


def _embedding(output: torch.Tensor | Any) -> torch.Tensor:
    """Unit-norm projected embeddings (``transformers`` 5 returns them as ``pooler_output``, older versions as a tensor)."""
    features = output if isinstance(output, torch.Tensor) else output.pooler_output
    return features / features.norm(p=2, dim=-1, keepdim=True)


def finding_agreement(prompted: np.ndarray, predicted: np.ndarray) -> float:
    r"""Offline text-image agreement: mean AUROC of a finding classifier against the findings the prompts named.

    :math:`\frac{1}{|C'|}\sum_{c \in C'} \mathrm{AUROC}(\text{predicted}_{\cdot c}, \text{prompted}_{\cdot c})`
    over the findings :math:`C'` (columns) that some prompts name and some do not; ``nan`` when there is none.
    ``prompted`` is ``(n, C)`` bool, ``predicted`` the classifier's ``(n, C)`` probabilities on the generated images.
    """
    named, scores = np.asarray(prompted).astype(bool), np.asarray(predicted, np.float64)
    if named.ndim != 2 or named.shape != scores.shape:
        raise ValueError(f"prompted and predicted must both be (n, C), got {named.shape} and {scores.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("predicted has non-finite values")
    areas = auroc(named, scores)
    return float(np.nanmean(areas)) if np.isfinite(areas).any() else float("nan")
