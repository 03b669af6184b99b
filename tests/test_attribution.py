"""Saliency-benchmark metrics, captum attributions and their agreement with gaze and findings."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

from radgazegen.evaluation.attribution import (
    attribution_agreement,
    auc_judd,
    grad_cam,
    integrated_gradients,
    saliency_scores,
)


def reference_auc_judd(saliency: np.ndarray, fixated: np.ndarray) -> float:
    """The saliency benchmark's AUC-Judd loop, for maps without ties (the reference jitters them away)."""
    values, fixed = saliency.ravel(), fixated.ravel()
    thresholds = np.sort(values[fixed])[::-1]
    n, total = len(thresholds), len(values)
    tp, fp = np.zeros(n + 2), np.zeros(n + 2)
    tp[-1] = fp[-1] = 1
    for k, threshold in enumerate(thresholds):
        above = (values >= threshold).sum()
        tp[k + 1] = (k + 1) / n
        fp[k + 1] = (above - k - 1) / (total - n)
    return float(np.sum(np.diff(fp) * (tp[1:] + tp[:-1]) / 2))


def block_map() -> np.ndarray:
    fixated = np.zeros((12, 10))
    fixated[3:6, 2:6] = 1
    fixated[9, 8] = 1
    return fixated


def test_saliency_equal_to_a_binary_fixation_map_scores_perfectly() -> None:
    fixated = block_map()
    share = fixated.mean()
    scores = saliency_scores(fixated, fixated)
    assert scores["cc"] == pytest.approx(1.0)
    assert scores["auc_judd"] == pytest.approx(1.0)
    assert scores["nss"] == pytest.approx((1 - share) / np.sqrt(share * (1 - share)))


def test_one_hot_saliency_at_the_only_fixation_gives_the_hand_computed_nss() -> None:
    saliency = np.zeros((8, 6))
    saliency[5, 2] = 1.0
    pixels = saliency.size
    mean, std = 1 / pixels, np.sqrt((1 / pixels) * (1 - 1 / pixels))
    scores = saliency_scores(saliency, np.array([[2.2, 4.8]]))  # (x, y), rounded to column 2, row 5
    assert scores["nss"] == pytest.approx((1 - mean) / std)
    assert scores["auc_judd"] == pytest.approx(1.0)


def test_inverted_saliency_scores_low_and_a_constant_one_scores_chance() -> None:
    fixated = block_map()
    n = int(fixated.sum())
    inverted = saliency_scores(1 - fixated, fixated)
    assert inverted["cc"] == pytest.approx(-1.0) and inverted["nss"] < 0
    assert inverted["auc_judd"] == pytest.approx(1 / (2 * n))  # every other pixel outranks every fixation
    constant = saliency_scores(np.full(fixated.shape, 0.3), fixated)
    assert constant["nss"] == 0.0 and constant["cc"] == 0.0
    assert constant["auc_judd"] == pytest.approx(0.5 + 1 / (2 * (n + 1)))


def test_auc_judd_matches_the_reference_without_ties_and_its_jitter_average_with_ties() -> None:
    rng = np.random.default_rng(1)
    saliency, fixated = rng.random((9, 9)), rng.random((9, 9)) < 0.2
    assert auc_judd(saliency, fixated) == pytest.approx(reference_auc_judd(saliency, fixated))
    tied = np.array([[0.2, 0.5, 0.5], [0.5, 0.2, 0.9]])
    fixed = np.array([[True, True, False], [False, True, False]])
    orders = list(itertools.permutations(range(tied.size)))  # every tie-breaking, equally likely
    jittered = [reference_auc_judd(tied + 1e-9 * np.reshape(order, tied.shape), fixed) for order in orders]
    assert auc_judd(tied, fixed) == pytest.approx(np.mean(jittered))


def test_points_and_their_map_agree_and_the_density_is_the_blurred_point_map() -> None:
    rng = np.random.default_rng(2)
    saliency = ndimage.gaussian_filter(rng.random((20, 24)), 2)
    points = np.array([[3, 4], [10, 15], [10, 15], [23, 19]])  # (x, y); a repeated point counts once
    fixated = np.zeros((20, 24))
    fixated[points[:, 1], points[:, 0]] = 1
    from_points = saliency_scores(saliency, points, sigma=1.5)
    from_map = saliency_scores(saliency, fixated)
    assert from_points["nss"] == pytest.approx(from_map["nss"])
    assert from_points["auc_judd"] == pytest.approx(from_map["auc_judd"])
    density = ndimage.gaussian_filter(fixated, 1.5, mode="constant")
    assert from_points["cc"] == pytest.approx(np.corrcoef(saliency.ravel(), density.ravel())[0, 1])
    assert from_points["cc"] != pytest.approx(from_map["cc"])


def test_heatmaps_are_thresholded_at_a_share_of_their_peak_and_small_saliency_is_resized() -> None:
    rows, cols = np.mgrid[0:32, 0:32]
    heatmap = np.exp(-((rows - 8) ** 2 + (cols - 10) ** 2) / 20)
    saliency = np.random.default_rng(3).random((32, 32))
    top = heatmap > 0.5 * heatmap.max()
    scores = saliency_scores(saliency, heatmap, threshold=0.5)
    assert scores["nss"] == pytest.approx((saliency[top].mean() - saliency.mean()) / saliency.std())
    assert scores["cc"] == pytest.approx(np.corrcoef(saliency.ravel(), heatmap.ravel())[0, 1])
    coarse = np.zeros((8, 8))
    coarse[2, 2] = 1.0  # covers rows/columns 8-11 of the 32 px map after upsampling
    assert saliency_scores(coarse, heatmap, threshold=0.5)["auc_judd"] > 0.9
    assert saliency_scores(coarse[::-1], heatmap, threshold=0.5)["auc_judd"] < 0.6


@pytest.mark.parametrize(
    ("fixations", "message"),
    [
        (np.zeros((6, 6)), "empty fixation map"),
        (np.zeros((0, 2)), "empty fixations"),
        (np.array([[1.0, 2.0], [6.0, 1.0]]), "outside"),
        (np.array([[1.0, -0.7]]), "outside"),
        (np.array([[np.nan, 1.0]]), "finite"),
        (-np.ones((6, 6)), "negative"),
        (np.ones((6, 6)), "every pixel"),
        (np.ones((6, 6, 2)), "2-D"),
    ],
)
def test_bad_fixations_are_refused(fixations: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        saliency_scores(np.random.default_rng(0).random((6, 6)), fixations)


def test_bad_saliency_and_threshold_are_refused() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        saliency_scores(np.full((4, 4), np.inf), block_map())
    with pytest.raises(ValueError, match="threshold"):
        saliency_scores(np.zeros((12, 10)), block_map(), threshold=1.0)


class QuadrantNet(nn.Module):
    """Logits from the top-left quadrant only: positive conv features at half resolution, masked to the quadrant."""

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.focus = nn.Dropout(dropout)  # the layer Grad-CAM hooks; zero outside the quadrant
        self.head = nn.Linear(4, 2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.rand(self.conv.weight.shape, generator=generator))
            self.conv.bias.fill_(0.1)
            self.head.weight.copy_(torch.rand(self.head.weight.shape, generator=generator) + 0.5)
            self.head.weight[1] *= -1  # class 1 falls as the quadrant brightens
            self.head.bias.zero_()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.pool(torch.relu(self.conv(images)))
        size = features.shape[-1]
        mask = torch.zeros(size, size)
        mask[: size // 2, : size // 2] = 1
        features = self.focus(features * mask)
        return self.head(features.mean((2, 3)))


def images(n: int = 3, size: int = 16) -> torch.Tensor:
    return torch.rand((n, 1, size, size), generator=torch.Generator().manual_seed(4))


def test_integrated_gradients_concentrate_on_the_quadrant_the_logit_reads_and_are_complete() -> None:
    model, batch = QuadrantNet(), images()
    attribution = integrated_gradients(model, batch, 0, steps=64)
    assert attribution.shape == (3, 16, 16) and (attribution >= 0).all()
    assert np.all(attribution[:, 9:, :] == 0) and np.all(attribution[:, :, 9:] == 0)  # 3x3 conv: 1 px spill
    assert attribution[:, :8, :8].sum() / attribution.sum() > 0.9
    with torch.no_grad():  # all gradients are positive here, so |IG| sums to f(x) - f(baseline)
        gain = model(batch)[:, 0] - model(torch.zeros_like(batch))[:, 0]
    np.testing.assert_allclose(attribution.sum((1, 2)), gain.numpy(), rtol=1e-3)
    per_image = integrated_gradients(model, batch, [0, 1, 0])
    np.testing.assert_allclose(per_image[1], integrated_gradients(model, batch[1:2], 1)[0], rtol=1e-5)
    assert not np.allclose(per_image[1], attribution[1])


def test_grad_cam_peaks_in_the_quadrant_and_attributions_leave_the_model_as_they_found_it() -> None:
    model, batch = QuadrantNet(dropout=0.5), images()
    model.train()
    cam = grad_cam(model, model.focus, batch, 0)
    assert cam.shape == (3, 16, 16) and (cam >= 0).all()
    for k in range(3):
        row, col = np.unravel_index(cam[k].argmax(), cam[k].shape)
        assert row < 8 and col < 8
    assert cam[:, :8, :8].sum() / cam.sum() > 0.9
    assert np.all(grad_cam(model, model.focus, batch, 1) == 0)  # negative weights: ReLU'd away
    first = integrated_gradients(model, batch, 0, steps=8)
    np.testing.assert_array_equal(first, integrated_gradients(model, batch, 0, steps=8))  # dropout off
    assert model.training
    assert all(parameter.grad is None for parameter in model.parameters())


def test_attribution_inputs_are_checked() -> None:
    model = QuadrantNet()
    with pytest.raises(ValueError, match="targets"):
        integrated_gradients(model, images(3), [0, 1])
    with pytest.raises(ValueError, match=r"\(n, 1, S, S\)"):
        grad_cam(model, model.focus, images(3)[:, 0], 0)
    with pytest.raises(ValueError, match="convolutional"):
        grad_cam(model, model.head, images(3), 0)


def test_attribution_agreement_scores_each_image_against_gaze_and_finding() -> None:
    findings = np.zeros((2, 16, 16), bool)
    findings[0, 2:6, 3:7] = True
    rows, cols = np.mgrid[0:16, 0:16]
    gaze = np.stack(
        [np.exp(-((rows - 4) ** 2 + (cols - 5) ** 2) / 8), np.exp(-((rows - 12) ** 2 + (cols - 12) ** 2) / 8)]
    )
    attributions = np.stack([findings[0].astype(float), gaze[1]])
    table = attribution_agreement(attributions, gaze, findings)
    assert list(table.columns) == ["image", "reference", "nss", "cc", "auc_judd"]
    assert list(zip(table["image"], table["reference"], strict=True)) == [(0, "gaze"), (0, "finding"), (1, "gaze")]
    assert table.loc[1, "auc_judd"] == pytest.approx(1.0) and table.loc[1, "cc"] == pytest.approx(1.0)
    assert table.loc[2, "cc"] == pytest.approx(1.0)  # attribution equal to the gaze heatmap
    assert len(attribution_agreement(attributions, gaze)) == 2
    with pytest.raises(ValueError, match="n = 2"):
        attribution_agreement(attributions, gaze[:1])
    with pytest.raises(ValueError, match="image 1, gaze: empty fixation map"):
        attribution_agreement(attributions, np.stack([gaze[0], np.zeros((16, 16))]))
