"""The downstream classifier: the torchvision DenseNet mirror, training on an easy synthetic task, AUROC tables."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from radgazegen.errors import DataFormatError, MissingWeightsError
from radgazegen.evaluation.classify import (
    Classifier,
    GreyDenseNet,
    auroc_table,
    chexpert_targets,
    train_classifier,
)
from radgazegen.evaluation.densenet import DenseNet, densenet
from radgazegen.evaluation.stats import auroc
from radgazegen.presets import ClassifierSettings

TINY = ClassifierSettings((1, 1, 1, 1), 8, 16, image_size=32, epochs=4, batch_size=16, learning_rate=3e-3)
CLASSES = ["bright spot", "dark spot"]


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Small convolutions run faster on one thread, and much faster on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def spots(n: int, seed: int, size: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Grey noise with a bright Gaussian spot (class 0) and / or a dark one (class 1), each present at random."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    labels = rng.integers(0, 2, size=(n, 2))
    images = 0.5 + 0.05 * rng.standard_normal((n, size, size))
    for i, c in zip(*np.nonzero(labels), strict=True):
        cy, cx = rng.uniform(10, size - 10, 2)
        images[i] += (0.45 if c == 0 else -0.45) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 32)
    return np.clip(images, 0, 1).astype(np.float32), labels


@pytest.fixture(scope="module")
def trained() -> Classifier:
    images, labels = spots(160, seed=0)
    return train_classifier(images, labels, CLASSES, TINY, seed=0, progress=False)


# -- the DenseNet mirror ------------------------------------------------------------------------------


def test_densenet121_has_torchvision_parameter_count_and_module_names() -> None:
    model = DenseNet(32, (6, 12, 24, 16), 64, 1000)
    assert sum(p.numel() for p in model.parameters()) == 7_978_856
    names = dict(model.named_modules())
    for name in ("features.conv0", "features.pool0", "features.denseblock4.denselayer16.conv2",
                 "features.transition3.pool", "features.norm5", "classifier"):  # fmt: skip
        assert name in names
    assert "features.transition4" not in names
    small = densenet(3, TINY)
    assert small(torch.rand(2, 3, 32, 32)).shape == (2, 3) and small.embed(torch.rand(2, 3, 32, 32)).shape == (2, 17)


def test_legacy_torchvision_keys_load_and_the_head_is_replaced(tmp_path: Path) -> None:
    source = DenseNet(8, (1, 1, 1, 1), 16, num_classes=1000)
    legacy = {}
    for key, value in source.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue  # old torchvision files predate it
        legacy[key.replace(".norm1.", ".norm.1.").replace(".conv2.", ".conv.2.")] = value
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    torch.save(legacy, tmp_path / "densenet-legacy.pth")
    model = densenet(3, TINY, tmp_path / "densenet-legacy.pth")
    for key, value in model.features.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            torch.testing.assert_close(value, source.features.state_dict()[key], rtol=0, atol=0)
    assert model.classifier.out_features == 3


def test_weights_that_do_not_fit_are_reported(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match="absent.pth"):
        densenet(2, TINY, tmp_path / "absent.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(MissingWeightsError, match="unreadable"):
        densenet(2, TINY, tmp_path / "junk.pth")
    torch.save({**DenseNet(8, (1, 1, 1, 1), 16).state_dict(), "extra.weight": torch.ones(1)}, tmp_path / "extra.pth")
    with pytest.raises(DataFormatError, match=r"extra.pth: .*1 unexpected key\(s\) extra.weight"):
        densenet(2, TINY, tmp_path / "extra.pth")
    torch.save(DenseNet(12, (1, 1, 1, 1), 16).state_dict(), tmp_path / "wider.pth")
    with pytest.raises(DataFormatError, match=r"wider.pth: .*wrong shape.*features.denseblock1.denselayer1.conv1"):
        densenet(2, TINY, tmp_path / "wider.pth")
    state = DenseNet(8, (1, 1, 1, 1), 16).state_dict()
    del state["features.norm5.weight"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(DataFormatError, match=r"1 missing key\(s\) features.norm5.weight"):
        densenet(2, TINY, tmp_path / "partial.pth")


# -- training and the trained classifier ----------------------------------------------------------------


def test_classifier_learns_an_easy_task(trained: Classifier) -> None:
    images, labels = spots(100, seed=1)
    table = auroc_table(labels, trained.predict(images), CLASSES, n_boot=100)
    assert table.loc["mean", "auroc"] > 0.9 and (table["auroc"] > 0.8).all()
    assert len(trained.history) == TINY.epochs and trained.history[-1] < trained.history[0]
    assert trained.features(images[:5]).shape == (5, 17)
    assert trained.predict(images[:0]).shape == (0, 2)


def test_save_and_load_give_identical_predictions(trained: Classifier, tmp_path: Path) -> None:
    images, _ = spots(20, seed=2, size=48)
    folder = trained.save(tmp_path / "classifier")
    loaded = Classifier.load(folder)
    assert loaded.classes == CLASSES and loaded.settings == TINY and loaded.history == trained.history
    np.testing.assert_array_equal(loaded.predict(images), trained.predict(images))
    (folder / "classifier.json").write_text("{not json")
    with pytest.raises(DataFormatError, match="classifier.json"):
        Classifier.load(folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(MissingWeightsError, match="model.safetensors"):
        Classifier.load(folder)


def test_training_is_deterministic_for_a_seed() -> None:
    images, labels = spots(24, seed=3)
    quick = ClassifierSettings((1, 1, 1, 1), 8, 16, image_size=32, epochs=1, batch_size=8)
    first, again, other = (train_classifier(images, labels, CLASSES, quick, seed=s, progress=False) for s in (5, 5, 6))
    np.testing.assert_array_equal(first.predict(images), again.predict(images))
    assert first.history == again.history
    assert not np.array_equal(first.predict(images), other.predict(images))


def test_multiclass_with_class_weights_gives_softmax_probabilities() -> None:
    images, _ = spots(18, seed=4)
    labels = np.arange(18) % 3
    quick = ClassifierSettings((1, 1, 1, 1), 8, 16, image_size=32, epochs=1, batch_size=8)
    model = train_classifier(images, labels, ["a", "b", "c"], quick, task="multiclass",
                             class_weights=np.array([0.5, 1.0, 1.5]), progress=False)  # fmt: skip
    probabilities = model.predict(images)
    assert probabilities.shape == (18, 3)
    np.testing.assert_allclose(probabilities.sum(1), 1, rtol=1e-5)


@pytest.mark.parametrize(
    ("labels", "kwargs", "message"),
    [
        (np.zeros((5, 2)), {}, "6 images but 5 labels"),
        (np.full((6, 2), 2), {}, "0/1"),
        (np.zeros(6, int), {"task": "multiclass", "class_weights": np.ones(3)}, "class_weights must be 2"),
        (np.full(6, 2), {"task": "multiclass"}, "class indices 0..1"),
        (np.zeros((6, 2)), {"task": "regression"}, "task must be one of"),
    ],
)
def test_bad_training_input_is_rejected(labels: np.ndarray, kwargs: dict, message: str) -> None:
    images, _ = spots(6, seed=5)
    with pytest.raises(ValueError, match=message):
        train_classifier(images, labels, CLASSES, TINY, progress=False, **kwargs)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        train_classifier(images * 255, np.zeros((6, 2)), CLASSES, TINY, progress=False)


def test_attributions_are_taken_on_the_grey_input(trained: Classifier) -> None:
    from captum.attr import IntegratedGradients, LayerGradCam

    images, _ = spots(3, seed=6, size=32)
    x = trained.inputs(images).requires_grad_(True)
    cam = LayerGradCam(trained.model, trained.cam_layer).attribute(x, target=0)
    assert cam.shape == (3, 1, 2, 2)  # 32 px: dense block 3 (S / 16), as norm5 would be 1 px
    assert IntegratedGradients(trained.model).attribute(x, target=1, n_steps=8).shape == x.shape
    large = ClassifierSettings((1, 1, 1, 1), 8, 16, image_size=128)
    untrained = Classifier(GreyDenseNet(densenet(2, large)), CLASSES, large)
    assert untrained.cam_layer is untrained.model.net.features.norm5
    cam = LayerGradCam(untrained.model, untrained.cam_layer).attribute(untrained.inputs(images), target=0)
    assert cam.shape == (3, 1, 4, 4)


# -- AUROC table and targets --------------------------------------------------------------------------


def test_auroc_equals_sklearn_and_skips_undefined_findings() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, (80, 4))
    scores = np.round(labels * 0.3 + rng.random((80, 4)), 1)  # rounded: ties count one half
    labels[:, 3] = 0
    expected = [roc_auc_score(labels[:, c], scores[:, c]) for c in range(3)]
    np.testing.assert_allclose(auroc(labels, scores)[:3], expected, rtol=0, atol=1e-12)
    table = auroc_table(labels, scores, ["a", "b", "c", "never"], n_boot=200, seed=1)
    assert list(table.index) == ["a", "b", "c", "never", "mean"]
    np.testing.assert_allclose(table["auroc"].iloc[:3], expected, atol=1e-12)
    assert table.loc["never", ["auroc", "low", "high"]].isna().all() and table.loc["never", "positives"] == 0
    assert table.loc["mean", "auroc"] == pytest.approx(np.mean(expected))
    assert (table["low"].iloc[[0, 1, 2, 4]] < table["auroc"].iloc[[0, 1, 2, 4]]).all()
    assert (table["auroc"].iloc[[0, 1, 2, 4]] < table["high"].iloc[[0, 1, 2, 4]]).all()
    with pytest.raises(ValueError, match="must both be"):
        auroc_table(labels, scores[:, :3], ["a", "b", "c", "never"])


def test_chexpert_targets_select_classes_in_order() -> None:
    table = pd.DataFrame({"Path": ["a", "b"], "Edema": [1, 0], "Cardiomegaly": [0, 1]}).astype({"Edema": np.uint8})
    np.testing.assert_array_equal(chexpert_targets(table, ["Cardiomegaly", "Edema"]), [[0, 1], [1, 0]])
    with pytest.raises(KeyError, match="Fracture"):
        chexpert_targets(table, ["Fracture"])
    with pytest.raises(ValueError, match="0/1"):
        chexpert_targets(table.assign(Edema=[-1, 0]), ["Edema"])
