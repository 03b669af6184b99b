"""Image-quality metrics: Fréchet / kernel distances, SSIM and MS-SSIM, TorchScript features and CLIP score,
each checked against torchmetrics (or a closed form) on the same inputs."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import linalg, ndimage
from torch import nn

from radgazegen.errors import MissingWeightsError
from radgazegen.evaluation.quality import (
    MS_SSIM_BETAS,
    TorchScriptFeatures,
    clip_score,
    finding_agreement,
    frechet_distance,
    frechet_from_rows,
    kernel_inception_distance,
    ms_ssim,
    ssim,
)


def _textures(n: int, size: int, sigma: float, seed: int) -> np.ndarray:
    """Smooth random images in [0, 1] (structure at scale ``sigma``)."""
    rng = np.random.default_rng(seed)
    images = ndimage.gaussian_filter(rng.normal(size=(n, size, size)), (0, sigma, sigma))
    low, high = images.min((1, 2), keepdims=True), images.max((1, 2), keepdims=True)
    return (images - low) / (high - low)


# --- Fréchet distance ---------------------------------------------------------------------------------------------


def test_frechet_distance_of_a_shifted_set_is_the_squared_shift() -> None:
    real = np.random.default_rng(0).normal(size=(50, 4)) @ np.diag([1.0, 2.0, 0.5, 3.0])
    shift = np.array([0.5, -1.0, 2.0, 0.0])
    assert frechet_distance(real, real) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(real, real + shift) == pytest.approx(shift @ shift, rel=1e-9)


def test_frechet_from_rows_equals_torchmetrics_and_frd_score_and_the_closed_form() -> None:
    from frd_score.frd import calculate_frechet_distance

    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(300, 6)), rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6)) + 0.3
    s1, s2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    diff = real.mean(0) - fake.mean(0)
    expected = diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(real, fake) == pytest.approx(expected, rel=1e-10)  # torchmetrics
    assert frechet_from_rows(real, fake) == pytest.approx(expected, rel=1e-10)
    wide_real, wide_fake = rng.normal(size=(32, 120)), rng.normal(0.2, 1.3, size=(16, 120))  # singular covariances
    sqrtm_value = calculate_frechet_distance(wide_real.mean(0), np.cov(wide_real, rowvar=False), wide_fake.mean(0),
                                             np.cov(wide_fake, rowvar=False))  # fmt: skip
    assert frechet_from_rows(wide_real, wide_fake) == pytest.approx(sqrtm_value, rel=1e-6)
    assert frechet_from_rows(wide_real, wide_fake) == pytest.approx(frechet_distance(wide_real, wide_fake), rel=1e-6)
    with_nan = np.vstack([wide_fake, np.full((1, 120), np.nan)])
    assert frechet_from_rows(wide_real, with_nan) == pytest.approx(frechet_from_rows(wide_real, wide_fake), rel=1e-12)


def test_frechet_distance_is_finite_and_real_for_singular_covariances() -> None:
    rng = np.random.default_rng(2)
    real = np.hstack([rng.normal(size=(5, 40)), np.ones((5, 3))])  # 5 samples in 43 dimensions, 3 constant
    trace = np.trace(np.cov(real, rowvar=False))
    for distance in (frechet_distance, frechet_from_rows):
        value = distance(real, real)
        assert isinstance(value, float) and abs(value) < 1e-6 * trace
        other = distance(real, real[::-1] * 1.5 + 1e-9 * rng.normal(size=real.shape))
        assert np.isfinite(other) and other > 1.0


@pytest.mark.parametrize(
    ("real", "fake", "message"),
    [
        (np.zeros(5), np.zeros((5, 1)), "2-D"),
        (np.zeros((1, 3)), np.zeros((5, 3)), "at least 2"),
        (np.zeros((4, 3)), np.zeros((4, 2)), "dimensions differ"),
        (np.full((4, 3), np.nan), np.zeros((4, 3)), "non-finite"),
    ],
)
def test_frechet_distance_rejects_bad_feature_sets(real: np.ndarray, fake: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        frechet_distance(real, fake)


# --- KID ----------------------------------------------------------------------------------------------------------


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two() -> None:
    rng = np.random.default_rng(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing for the book to print: torchmetrics' buffer note is expected here
        same, _ = kernel_inception_distance(rng.normal(size=(80, 5)), rng.normal(size=(80, 5)), subset_size=40,
                                            subsets=20)  # fmt: skip
    far, spread = kernel_inception_distance(rng.normal(size=(80, 5)), rng.normal(1.0, 1.0, (80, 5)), subset_size=40)
    assert abs(same) < 0.05 < far and spread > 0


def test_kid_rejects_a_subset_size_below_two_or_above_a_set() -> None:
    with pytest.raises(ValueError, match="subset_size"):
        kernel_inception_distance(np.zeros((5, 2)), np.zeros((5, 2)), subset_size=1)
    with pytest.raises(ValueError, match="subset_size 6 exceeds a set"):
        kernel_inception_distance(np.zeros((8, 2)), np.zeros((5, 2)), subset_size=6)


def test_kid_spread_is_zero_only_when_every_subset_is_the_whole_set() -> None:
    rng = np.random.default_rng(4)
    real, fake = rng.normal(size=(20, 5)), rng.normal(0.5, 1.0, (20, 5))
    assert kernel_inception_distance(real, fake, subset_size=20, subsets=10)[1] == pytest.approx(0.0, abs=1e-12)
    assert kernel_inception_distance(real, fake, subset_size=10, subsets=10)[1] > 1e-4


# --- SSIM and MS-SSIM ---------------------------------------------------------------------------------------------


def _pairs(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Independent random, smooth and noisy, anti-correlated and identical pairs, ``(4, 1, size, size)`` float64."""
    rng = np.random.default_rng(size)
    smooth = _textures(1, size, 2.0, seed=size)[0]
    a = np.stack([rng.uniform(size=(size, size)), smooth, smooth, smooth])
    b = np.stack([rng.uniform(size=(size, size)), np.clip(smooth + rng.normal(0, 0.05, smooth.shape), 0, 1), 1 - smooth,
                  smooth])  # fmt: skip
    return torch.from_numpy(a)[:, None], torch.from_numpy(b)[:, None]


@pytest.mark.parametrize("size", [24, 48, 64])
def test_ssim_equals_torchmetrics(size: int) -> None:
    from torchmetrics.functional.image import structural_similarity_index_measure

    a, b = _pairs(size)
    expected = structural_similarity_index_measure(a, b, data_range=1.0, reduction="none").numpy()
    np.testing.assert_allclose(ssim(a, b), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ssim(a[:, 0].numpy(), b[:, 0].numpy()), expected, rtol=0, atol=1e-12)
    assert ssim(a, a) == pytest.approx(np.ones(len(a)), abs=1e-12)


@pytest.mark.parametrize(("size", "scales"), [(32, 2), (64, 3), (176, 5)])
def test_ms_ssim_equals_torchmetrics_with_the_betas_that_fit(size: int, scales: int) -> None:
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

    a, b = _pairs(size)
    betas = np.array(MS_SSIM_BETAS[:scales])
    betas = betas if scales == len(MS_SSIM_BETAS) else betas / betas.sum()
    expected = multiscale_structural_similarity_index_measure(
        a, b, data_range=1.0, betas=tuple(betas), normalize="relu", reduction="none"
    ).numpy()
    assert (expected[:-1] < 1).all() and expected[-2] == 0  # the anti-correlated pair hits the relu
    np.testing.assert_allclose(ms_ssim(a, b), expected, rtol=0, atol=1e-12)
    # torchmetrics makes python-float betas a float32 tensor: 0.25 and 0.75 are exact there (numpy floats stay float64)
    np.testing.assert_allclose(ms_ssim(a, b, betas=(0.25, 0.75)), multiscale_structural_similarity_index_measure(
        a, b, data_range=1.0, betas=(0.25, 0.75), reduction="none").numpy(), rtol=0, atol=1e-12)  # fmt: skip


def test_ms_ssim_refuses_betas_the_image_is_too_small_for() -> None:
    a, b = _pairs(32)
    with pytest.raises(ValueError, match="3 scales need images of at least 44 px"):
        ms_ssim(a, b, betas=(0.3, 0.3, 0.4))


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        (np.zeros((2, 16, 16)), np.zeros((2, 16, 15)), "differ in shape"),
        (np.zeros((2, 10, 10)), np.zeros((2, 10, 10)), "at least 11 px"),
        (np.zeros((2, 3, 16, 16)), np.zeros((2, 3, 16, 16)), "grey images"),
    ],
)
def test_ssim_rejects_bad_batches(a: np.ndarray, b: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ssim(a, b)


# --- TorchScript features: FID and KID as torchmetrics computes them with the same network -------------------------


class _TinyFeatures(nn.Module):
    """A stand-in for the FID Inception network: (n, 3, H, W) in [0, 255] -> 6 features with ``return_features``
    (the energies of 6 random filters, which tell textures of different scales apart)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, kernel_size=5, stride=2)
        self.head = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        features = 100 * (self.conv(x / 255.0 - 0.5) ** 2).mean((2, 3))
        return features if return_features else self.head(features)


class _TorchmetricsFeatures(nn.Module):
    """The scripted network as torchmetrics' custom ``feature`` module (``num_features`` spares its dummy call)."""

    num_features = 6

    def __init__(self, network: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x, return_features=True).double()


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("torchscript") / "tiny.pt"
    torch.jit.save(torch.jit.script(_TinyFeatures().eval()), str(path))
    return path


def test_torchscript_features_prepare_grey_images_like_the_fid_network_expects(scripted: Path) -> None:
    extractor = TorchScriptFeatures(scripted, input_size=40)
    images = _textures(3, 20, 1.0, seed=4)
    inputs = extractor.prepare(images)
    assert inputs.shape == (3, 3, 40, 40) and inputs.dtype == torch.float32
    assert torch.equal(inputs[:, 0], inputs[:, 2]) and 0 <= inputs.min() and inputs.max() <= 255
    np.testing.assert_allclose(
        TorchScriptFeatures(scripted, input_size=20).prepare(images)[:, 1], 255 * images, rtol=1e-6
    )
    features = extractor(images)
    assert features.shape == (3, 6) and features.dtype == np.float64


def test_fid_and_kid_equal_torchmetrics_with_the_same_network(scripted: Path) -> None:
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    extractor = TorchScriptFeatures(scripted, input_size=48, batch_size=16)
    real_images, fake_images = _textures(40, 32, 1.0, seed=5), _textures(30, 32, 2.5, seed=6)
    real, fake = extractor(real_images), extractor(fake_images)
    module = _TorchmetricsFeatures(extractor.network)
    fid, kid = (
        FrechetInceptionDistance(feature=module),
        KernelInceptionDistance(feature=module, subsets=7, subset_size=20),
    )
    for metric in (fid, kid):
        metric.update(extractor.prepare(real_images), real=True)
        metric.update(extractor.prepare(fake_images), real=False)
    ours = frechet_distance(real, fake)
    assert ours > 0.01 and ours == pytest.approx(fid.compute().item(), rel=1e-6)
    torch.manual_seed(11)  # torchmetrics draws its subsets from the global generator
    expected_mean, expected_std = (value.item() for value in kid.compute())
    mean, std = kernel_inception_distance(real, fake, subset_size=20, subsets=7, seed=11)
    assert mean == pytest.approx(expected_mean, rel=1e-9) and std == pytest.approx(expected_std, rel=1e-9)
    assert kernel_inception_distance(real, fake, subset_size=20, subsets=7, seed=12)[0] != pytest.approx(mean, rel=1e-6)


def test_torchscript_features_name_a_missing_or_foreign_file(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match="inception-2015-12-05.pt"):
        TorchScriptFeatures(tmp_path / "inception-2015-12-05.pt")
    state = tmp_path / "state_dict.pt"
    torch.save(_TinyFeatures().state_dict(), state)
    with pytest.raises(MissingWeightsError, match="state_dict.pt: not a TorchScript archive"):
        TorchScriptFeatures(state)


# --- CLIP score -------------------------------------------------------------------------------------------------


def _clip_tokenizer():
    """A byte-level BPE vocabulary of single characters, as tests/tiny_sd.py builds it (without importing diffusers)."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    vocab = {s: i for i, s in enumerate(symbols)}
    vocab.update({s + "</w>": len(vocab) + i for i, s in enumerate(symbols)})
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=16)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    folder = tmp_path_factory.mktemp("clip")
    tokenizer = _clip_tokenizer()
    torch.manual_seed(2)  # a random CLIP whose cosines are positive for most of the test's pairs, negative for some
    config = CLIPConfig(
        text_config={"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4,
                     "num_hidden_layers": 2, "max_position_embeddings": 16, "bos_token_id": tokenizer.bos_token_id,
                     "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id},
        vision_config={"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4, "num_hidden_layers": 2,
                       "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )  # fmt: skip
    CLIPModel(config).save_pretrained(folder)
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    return folder


class _TensorFeatures:
    """CLIPModel as torchmetrics 1.9 expects it: ``get_*_features`` returning tensors. transformers 5 returns
    them as ``pooler_output`` of a model output, which torchmetrics' ``CLIPScore`` cannot normalise."""

    def __init__(self, model) -> None:
        self.model, self.config = model, model.config

    def to(self, device: torch.device) -> _TensorFeatures:
        self.model.to(device)
        return self

    def get_image_features(self, *args, **kwargs) -> torch.Tensor:
        return self.model.get_image_features(*args, **kwargs).pooler_output

    def get_text_features(self, *args, **kwargs) -> torch.Tensor:
        return self.model.get_text_features(*args, **kwargs).pooler_output


def test_clip_score_equals_torchmetrics_with_the_same_local_model(tiny_clip: Path) -> None:
    from torchmetrics.multimodal import CLIPScore
    from transformers import CLIPModel, CLIPProcessor

    images = _textures(5, 40, 1.5, seed=7)
    prompts = ["clear lungs", "opacity", "cardiomegaly", "effusion", "apical nodule"]  # < 16 tokens of one character
    ours = clip_score(images, prompts, tiny_clip, batch_size=2)

    # torchmetrics loads a local folder only through a callable (its string form accepts known hub names)
    metric = CLIPScore(model_name_or_path=lambda: (_TensorFeatures(CLIPModel.from_pretrained(tiny_clip)),
                                                  CLIPProcessor.from_pretrained(tiny_clip)))  # fmt: skip
    expected = []
    for image, prompt in zip(images, prompts, strict=True):
        metric.reset()
        metric.update(torch.from_numpy(np.round(image * 255).astype(np.uint8))[None].repeat(3, 1, 1), prompt)
        expected.append(metric.compute().item())
    assert ours.shape == (5,) and (ours > 0).any()
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-4)


def test_clip_score_needs_a_local_folder_and_one_prompt_per_image(tmp_path: Path, tiny_clip: Path) -> None:
    with pytest.raises(MissingWeightsError, match="no_clip"):
        clip_score(np.zeros((1, 8, 8)), ["x"], tmp_path / "no_clip")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MissingWeightsError, match="empty: no readable CLIP"):
        clip_score(np.zeros((1, 8, 8)), ["x"], empty)
    with pytest.raises(ValueError, match="2 images but 1 prompts"):
        clip_score(np.zeros((2, 8, 8)), ["x"], tiny_clip)


def test_clip_score_truncates_long_prompts_to_the_text_positions(tiny_clip: Path) -> None:
    images = _textures(2, 32, 1.0, seed=8)
    long = clip_score(images, ["left lower lobe opacity", "small pleural effusion"], tiny_clip)
    cut = clip_score(images, ["left lower lobe", "small pleural e"], tiny_clip)  # 14 characters + start and end
    np.testing.assert_allclose(long, cut, rtol=1e-6)


# --- finding agreement ------------------------------------------------------------------------------------------


def test_finding_agreement_is_the_mean_auroc_over_findings_with_both_classes() -> None:
    prompted = np.array([[1, 0, 1], [1, 1, 1], [0, 0, 1], [0, 1, 1]], bool)
    predicted = np.array([[0.9, 0.1, 0.5], [0.8, 0.3, 0.5], [0.2, 0.2, 0.5], [0.1, 0.4, 0.5]])
    # column 0 perfectly ranked (AUROC 1), column 1: positives 0.3, 0.4 vs negatives 0.1, 0.2 (1), column 2 one class
    assert finding_agreement(prompted, predicted) == pytest.approx(1.0)
    predicted[:, 1] = [0.5, 0.1, 0.6, 0.2]  # positives 0.1, 0.2 below negatives 0.5, 0.6: AUROC 0
    assert finding_agreement(prompted, predicted) == pytest.approx(0.5)
    assert np.isnan(finding_agreement(prompted[:, 2:], predicted[:, 2:]))
    with pytest.raises(ValueError, match="both be"):
        finding_agreement(prompted, predicted[:, :2])
