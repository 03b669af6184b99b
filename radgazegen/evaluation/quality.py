r"""Image-quality metrics for generated chest X-rays: feature distances, structural similarity, text-image agreement.

- :func:`frechet_distance` (FID when the features are Inception's) and :func:`kernel_inception_distance` (KID)
  of two feature sets: torchmetrics' metrics, given the features through ``feature=``;
- :func:`ssim` and :func:`ms_ssim` per image pair: torchmetrics' functions;
- :func:`precision_recall_density_coverage` (k = 5) of two feature sets: the ``prdc`` package, its authors' own;
- feature extractors: any callable mapping ``(n, H, W)`` images in [0, 1] to ``(n, d)`` features
  (:class:`FeatureExtractor`), e.g. :class:`TorchScriptFeatures` for the standard FID Inception-v3 network and
  :class:`RadDinoFeatures` for RAD-DINO, CheXGenBench's CXR feature network;
- :func:`clip_score` with a CLIP model from a local folder, and :func:`finding_agreement`, the offline
  text-image agreement used when no CLIP is given.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from radgazegen.data.images import grey_levels8
from radgazegen.errors import MissingWeightsError
from radgazegen.evaluation.stats import auroc

SSIM_WINDOW = 11
"""Side of torchmetrics' Gaussian SSIM window (``int(3.5 * sigma + 0.5) * 2 + 1`` with sigma 1.5)."""
MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
"""Weights of the five scales of MS-SSIM (Wang et al. 2003), finest first."""
FID_CALL_KWARGS: Mapping[str, Any] = MappingProxyType({"return_features": True})
"""Keyword arguments with which the FID Inception network (clean-fid / StyleGAN TorchScript) returns its 2048 features."""


class _FeatureRows(torch.nn.Module):
    """torchmetrics' ``feature=`` extractor for features computed beforehand: it returns its input rows.

    The feature network (the in-project CXR DenseNet, or the FID Inception) runs once per image; the
    half-sampling intervals then recompute the distance on many subsets of the same rows.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = int(num_features)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return rows


def frechet_distance(real_features: np.ndarray, fake_features: np.ndarray) -> float:
    r"""torchmetrics' ``FrechetInceptionDistance`` of two feature sets ``(n, d)``: FID when the features are Inception's.

    :math:`d^2 = \lVert\mu_r - \mu_f\rVert^2 + \operatorname{Tr}(\Sigma_r + \Sigma_f - 2(\Sigma_r\Sigma_f)^{1/2})`
    with unbiased covariances, in float64; the features reach the metric through ``feature=`` (see
    :class:`_FeatureRows`), so the value is torchmetrics' for the network that made them.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    real, fake = _feature_pair(real_features, fake_features, minimum=2)
    metric = FrechetInceptionDistance(feature=_FeatureRows(real.shape[1]))
    metric.update(torch.from_numpy(real), real=True)
    metric.update(torch.from_numpy(fake), real=False)
    return float(metric.compute())


def frechet_from_rows(real: np.ndarray, fake: np.ndarray) -> float:
    r"""The same Fréchet distance of two row sets ``(n, d)`` (unbiased covariances), through their cross-Gram matrix.

    With centred rows :math:`X` (:math:`n_r \times d`) and :math:`Y` (:math:`n_f \times d`), the nonzero eigenvalues
    of :math:`\Sigma_r\Sigma_f` are the squared singular values of :math:`XY^\top / \sqrt{(n_r-1)(n_f-1)}`, so
    :math:`\operatorname{Tr}(\Sigma_r\Sigma_f)^{1/2} = \lVert XY^\top\rVert_* / \sqrt{(n_r-1)(n_f-1)}` exactly:
    an :math:`n_r \times n_f` SVD instead of a :math:`d \times d` matrix root. Equal to torchmetrics'
    ``FrechetInceptionDistance`` and frd-score's ``calculate_frechet_distance`` on the same rows (the tests check
    both); ours because the half-sampling intervals evaluate a hundred subsets per comparison, and their
    :math:`d \times d` roots (0.3 s for torchmetrics at d = 368, 8 s for scipy's ``sqrtm`` at d = 398 on two
    cores) would cost the ``cpu`` book many minutes. Rows with a NaN are dropped. Float64.
    """
    x, y = (np.asarray(rows, np.float64) for rows in (real, fake))
    x, y = x[~np.isnan(x).any(1)], y[~np.isnan(y).any(1)]
    if len(x) < 2 or len(y) < 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"need two row sets of one width with at least 2 rows each, got {x.shape} and {y.shape}")
    mean_x, mean_y = x.mean(0), y.mean(0)
    x, y = x - mean_x, y - mean_y
    scale = np.sqrt((len(x) - 1) * (len(y) - 1))
    trace_root = np.linalg.svd(x @ y.T, compute_uv=False).sum() / scale
    traces = (x * x).sum() / (len(x) - 1) + (y * y).sum() / (len(y) - 1)
    return float(((mean_x - mean_y) ** 2).sum() + traces - 2 * trace_root)


def kernel_inception_distance(
    real_features: np.ndarray, fake_features: np.ndarray, subset_size: int = 1000, subsets: int = 100, seed: int = 0
) -> tuple[float, float]:
    r"""torchmetrics' ``KernelInceptionDistance``: mean and standard deviation of the unbiased MMD² over random subsets.

    Kernel :math:`k(x, y) = (x^\top y / d + 1)^3`; each of ``subsets`` subsets draws ``subset_size`` rows of
    each set without replacement (``torch.randperm``, seeded with ``seed`` in a forked RNG). ``subset_size``
    must not exceed either set (torchmetrics' rule); choose it below both, or every subset is a permutation
    of the whole set and the standard deviation is 0. Computed in float64.
    """
    from torchmetrics.image.kid import KernelInceptionDistance

    real, fake = _feature_pair(real_features, fake_features, minimum=2)
    if isinstance(subset_size, bool) or not isinstance(subset_size, int) or subset_size < 2:
        raise ValueError(f"subset_size must be an integer >= 2, got {subset_size!r}")
    if subset_size > min(len(real), len(fake)):
        raise ValueError(f"subset_size {subset_size} exceeds a set ({len(real)} real, {len(fake)} generated rows)")
    if isinstance(subsets, bool) or not isinstance(subsets, int) or subsets < 1:
        raise ValueError(f"subsets must be a positive integer, got {subsets!r}")
    with warnings.catch_warnings():  # its "saves all extracted features in buffer" note: the rows are already in memory
        warnings.filterwarnings("ignore", message=".*will save all extracted features in buffer", category=UserWarning)
        metric = KernelInceptionDistance(feature=_FeatureRows(real.shape[1]), subsets=subsets, subset_size=subset_size)
    metric.update(torch.from_numpy(real), real=True)
    metric.update(torch.from_numpy(fake), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def precision_recall_density_coverage(real_features: np.ndarray, fake_features: np.ndarray, k: int = 5) -> dict[str, float]:
    r"""Precision, recall, density and coverage (Naeem et al. 2020) of two feature sets, with ``k`` neighbours.

    With :math:`B(x, r)` the ball around :math:`x` of radius its distance to its :math:`k`-th nearest neighbour in
    its own set: precision is the share of generated points inside some real ball, recall the share of real
    points inside some generated ball, density :math:`\frac{1}{kM}\sum_j \sum_i 1[Y_j \in B(X_i)]`, coverage the
    share of real balls holding a generated point. Computed by ``prdc`` (``compute_prdc``), the authors' reference
    implementation, which CheXGenBench calls with k = 5; ours would only repeat it. Each set needs ``k + 2`` rows.
    """
    import contextlib
    import io

    from prdc import compute_prdc

    real, fake = _feature_pair(real_features, fake_features, minimum=k + 2)  # k neighbours besides a point itself
    with contextlib.redirect_stdout(io.StringIO()):  # it prints the set sizes
        found = compute_prdc(real_features=real, fake_features=fake, nearest_k=k)
    return {name: float(found[name]) for name in ("precision", "recall", "density", "coverage")}


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
    r"""SSIM of each image pair: torchmetrics' ``structural_similarity_index_measure(reduction="none")``.

    Images ``(n, H, W)`` or ``(n, 1, H, W)``, at least 11 px a side, in float64. An 11 x 11 Gaussian window
    (:math:`\sigma = 1.5`) gives
    :math:`\text{SSIM} = \frac{(2\mu_a\mu_b + C_1)(2\sigma_{ab} + C_2)}{(\mu_a^2 + \mu_b^2 + C_1)(\sigma_a^2 + \sigma_b^2 + C_2)}`
    with :math:`C_i = (k_i L)^2`, :math:`k_1 = 0.01`, :math:`k_2 = 0.03`, :math:`L` = ``data_range``.
    """
    from torchmetrics.functional.image import structural_similarity_index_measure

    x, y = _image_pair(a, b, data_range)
    return structural_similarity_index_measure(x, y, data_range=data_range, reduction="none").numpy()


def ms_ssim(
    a: np.ndarray | torch.Tensor,
    b: np.ndarray | torch.Tensor,
    data_range: float = 1.0,
    betas: Sequence[float] | None = None,
) -> np.ndarray:
    r"""Multi-scale SSIM of each image pair: torchmetrics' ``multiscale_structural_similarity_index_measure``.

    :math:`\prod_{s < S-1} \mathrm{relu}(cs_s)^{\beta_s} \cdot \mathrm{relu}(\text{SSIM}_{S-1})^{\beta_{S-1}}`
    over :math:`S` = ``len(betas)`` scales, each 2 x 2 average-pooled from the previous one.

    The five standard betas (:data:`MS_SSIM_BETAS`) need images of 176 px. With ``betas=None`` images that
    large get them; smaller ones get the leading standard betas for as many scales as fit the 11 px window
    (2 for 22-43 px, 3 for 44-87 px, 4 for 88-175 px), renormalised to sum 1 (our choice: torchmetrics
    refuses images too small for its betas). Explicit ``betas`` are used as given.
    """
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

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
    return multiscale_structural_similarity_index_measure(
        x, y, data_range=data_range, betas=tuple(weights), reduction="none"  # numpy floats: float64 weights
    ).numpy()


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


class FeatureExtractor(Protocol):
    """Maps grey images ``(n, H, W)`` float in [0, 1] to features ``(n, d)``."""

    def __call__(self, images: np.ndarray) -> np.ndarray: ...


class TorchScriptFeatures:
    """A TorchScript feature network loaded from a local file (e.g. the standard FID Inception-v3).

    The FID network of clean-fid / StyleGAN (``pt_inception-2015-12-05-6726825d.pth`` or
    ``inception-2015-12-05.pt``) is distributed this way: it takes ``(n, 3, 299, 299)`` floats in [0, 255] and
    ``return_features=True`` gives the 2048 pool features. Grey images in [0, 1] are repeated to 3 channels,
    bilinearly resized (``align_corners=False``; with ``antialias`` a shrinking resize averages as PIL's does, as
    CheXGenBench's ``transforms.Resize`` of its images) to ``input_size`` and mapped linearly onto ``value_range``;
    the network is called with ``call_kwargs`` on batches of ``batch_size``.
    """

    def __init__(
        self,
        path: str | Path,
        input_size: int = 299,
        value_range: tuple[float, float] = (0.0, 255.0),
        call_kwargs: Mapping[str, Any] = FID_CALL_KWARGS,
        batch_size: int = 32,
        device: str | torch.device = "cpu",
        antialias: bool = False,
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
        self.call_kwargs, self.device, self.antialias = dict(call_kwargs), torch.device(device), bool(antialias)

    def prepare(self, images: np.ndarray) -> torch.Tensor:
        """The network's input for grey images ``(n, H, W)`` in [0, 1]: ``(n, 3, input_size, input_size)`` float32."""
        array = np.asarray(images, np.float32)
        if array.ndim != 3:
            raise ValueError(f"images must be (n, H, W), got shape {array.shape}")
        if not (np.isfinite(array).all() and array.min(initial=0) >= 0 and array.max(initial=0) <= 1):
            raise ValueError("images must hold finite values in [0, 1]")
        x = torch.from_numpy(array)[:, None]
        if tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False,
                              antialias=self.antialias)  # fmt: skip
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


class RadDinoFeatures:
    """RAD-DINO's image embedding from a local folder: CheXGenBench's CXR feature network for FID, KID and PRDC.

    ``folder`` holds what ``save_pretrained`` writes for ``microsoft/rad-dino`` (a transformers ``AutoModel`` and its
    ``AutoImageProcessor``); it is loaded with ``local_files_only`` and without ``trust_remote_code``, so nothing is
    downloaded and no code from the folder runs. As CheXGenBench's ``RadDinoFeatureExtractor``: images as 8-bit RGB
    ``uint8`` tensors ``(3, H, W)`` (grey repeated) through the processor, the model's ``pooler_output`` (the
    layer-normed CLS token) as the features.
    """

    def __init__(self, folder: str | Path, device: str | torch.device = "cpu", batch_size: int = 16) -> None:
        from transformers import AutoImageProcessor, AutoModel

        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise MissingWeightsError(f"{self.folder}: RAD-DINO folder not found (a model and image processor saved "
                                      "with save_pretrained)")  # fmt: skip
        try:
            self.model = AutoModel.from_pretrained(self.folder, local_files_only=True, trust_remote_code=False).eval()
            self.processor = AutoImageProcessor.from_pretrained(self.folder, local_files_only=True,
                                                                trust_remote_code=False)  # fmt: skip
        except (OSError, ValueError) as err:
            raise MissingWeightsError(f"{self.folder}: no readable model and image processor ({err})") from None
        self.device, self.batch_size = torch.device(device), int(batch_size)
        self.model.to(self.device)

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Features ``(n, d)`` float64 of grey images ``(n, H, W)`` in [0, 1]."""
        array = np.asarray(images, np.float64)
        if array.ndim != 3 or not np.isfinite(array).all():
            raise ValueError(f"images must be (n, H, W) with finite values, got shape {array.shape}")
        pixels = torch.from_numpy(grey_levels8(array))[:, None].repeat(1, 3, 1, 1)
        parts = []
        for start in range(0, len(pixels), self.batch_size):
            inputs = self.processor(images=list(pixels[start : start + self.batch_size]), return_tensors="pt")
            output = self.model(pixel_values=inputs["pixel_values"].to(self.device))
            parts.append(output.pooler_output.float().cpu())
        return torch.cat(parts).numpy().astype(np.float64)


def clip_score(images: np.ndarray, prompts: Sequence[str], clip_dir: str | Path, batch_size: int = 16) -> np.ndarray:
    r"""CLIP score of each image and its prompt: :math:`100 \max(\cos(E_I, E_T), 0)`, as torchmetrics' ``CLIPScore``.

    ``clip_dir`` is a local folder holding a ``transformers`` ``CLIPModel`` and its ``CLIPProcessor``
    (``save_pretrained``); nothing is downloaded. Grey images ``(n, H, W)`` in [0, 1] are given to the
    processor as 8-bit RGB tensors ``(3, H, W)`` (values rounded to 0-255, channels repeated), as
    torchmetrics passes image tensors; prompts longer than the text model's positions are truncated.

    Our own rather than torchmetrics' ``CLIPScore`` (1.9), whose definition it follows and which the tests
    check it against on short prompts: that one cannot read transformers-5 feature outputs (model outputs,
    not tensors), and it shortens long prompts by slicing the token ids, which drops the end-of-text token
    whose state CLIP pools; radiology reports are routinely longer than CLIP's 77 positions.
    """
    array = np.asarray(images, np.float64)
    if array.ndim != 3:
        raise ValueError(f"images must be (n, H, W), got shape {array.shape}")
    if len(prompts) != len(array):
        raise ValueError(f"{len(array)} images but {len(prompts)} prompts")
    model, processor = _load_clip(Path(clip_dir))
    pixels = torch.from_numpy(grey_levels8(array))[:, None].repeat(1, 3, 1, 1)
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
