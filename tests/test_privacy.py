"""The privacy audit's pieces: perturbed controls, donors, similarity spaces, re-identification and memorization."""

from __future__ import annotations

import numpy as np
import pytest

from radgazegen.controls.perturb import Perturbation, deformation, perturb_maps


def _maps(size: int = 48) -> dict[str, np.ndarray]:
    rows, cols = np.indices((size, size))
    lungs = (((rows - 24) / 16) ** 2 + ((cols - 14) / 8) ** 2 < 1) | (((rows - 24) / 16) ** 2 + ((cols - 34) / 8) ** 2 < 1)
    edges = np.zeros((size, size))
    edges[10:40, 10] = edges[10:40, 30] = edges[20, 5:45] = 1
    texture = np.clip(np.sin(rows / 3.0) * np.cos(cols / 5.0) * 0.5 + 0.5, 0, 1)
    gaze = np.exp(-((rows - 20) ** 2 + (cols - 30) ** 2) / 30.0)
    return {"canny": edges, "lungs": lungs.astype(float), "texture:glcm_Contrast": texture, "gaze_findings": gaze}


def test_perturbation_is_seeded_keeps_kinds_and_leaves_gaze_alone() -> None:
    maps = _maps()
    first, again, other = perturb_maps(maps, 7), perturb_maps(maps, 7), perturb_maps(maps, 8)
    for name in maps:
        np.testing.assert_array_equal(first[name], again[name])
        assert first[name].dtype == np.float32 and 0 <= first[name].min() and first[name].max() <= 1
    np.testing.assert_array_equal(first["gaze_findings"], maps["gaze_findings"].astype(np.float32))
    assert set(np.unique(first["lungs"])) <= {0.0, 1.0} and set(np.unique(first["canny"])) <= {0.0, 1.0}
    assert any(np.abs(first[n] - other[n]).max() > 0 for n in ("canny", "lungs", "texture:glcm_Contrast"))
    # the lungs move but keep roughly their area; edges are thinned; texture is moved and smoothed
    area, moved_area = maps["lungs"].sum(), first["lungs"].sum()
    assert 0.7 * area < moved_area < 1.3 * area and np.abs(first["lungs"] - maps["lungs"]).sum() > 0.1 * area
    assert first["canny"].sum() < 0.9 * maps["canny"].sum()
    assert np.corrcoef(first["texture:glcm_Contrast"].ravel(), maps["texture:glcm_Contrast"].ravel())[0, 1] < 0.9


def test_no_perturbation_is_the_identity_and_bad_settings_are_named() -> None:
    maps = _maps()
    still = Perturbation(rotation=0, scale=0, shift=0, elastic=0, edge_keep=1.0, blur=0)
    coords = deformation(48, 3, still)
    np.testing.assert_allclose(coords, np.indices((48, 48)), atol=1e-9)
    same = perturb_maps(maps, 3, still)
    for name in ("lungs", "texture:glcm_Contrast", "canny"):
        np.testing.assert_allclose(same[name], maps[name], atol=1e-6)
    with pytest.raises(ValueError, match="edge_keep"):
        Perturbation(edge_keep=0)
    with pytest.raises(ValueError, match="rotation"):
        Perturbation(rotation=float("nan"))
    with pytest.raises(ValueError, match="square maps of one size"):
        perturb_maps({"canny": np.zeros((8, 8)), "lungs": np.zeros((9, 9))}, 0)


def test_similarities_are_correlation_and_cosine() -> None:
    from radgazegen.evaluation.privacy import cosine_similarity, pixel_similarity

    rng = np.random.default_rng(0)
    a, b = rng.random((3, 8, 8)), rng.random((4, 8, 8))
    expected = np.corrcoef(np.concatenate([a, b]).reshape(7, -1))[:3, 3:]
    np.testing.assert_allclose(pixel_similarity(a, b), expected, atol=1e-12)
    np.testing.assert_allclose(pixel_similarity(a, b, block=2), expected, atol=1e-12)  # blocks change nothing
    np.testing.assert_allclose(pixel_similarity(a, 2 * a + 1).diagonal(), 1.0)  # invariant to brightness and contrast
    assert pixel_similarity(np.ones((1, 8, 8)), a).tolist() == [[0.0, 0.0, 0.0]]
    fa, fb = rng.normal(size=(3, 5)), rng.normal(size=(2, 5))
    np.testing.assert_allclose(cosine_similarity(fa, fb)[1, 0], fa[1] @ fb[0] / np.linalg.norm(fa[1]) / np.linalg.norm(fb[0]))
    with pytest.raises(ValueError, match="one width"):
        cosine_similarity(fa, fb[:, :4])


def test_reidentification_ranks_and_chance() -> None:
    from math import comb

    from radgazegen.evaluation.privacy import chance, reidentification

    patients = ["p0", "p1", "p1", "p2", "p3", "p4", "p5", "p6"]
    similarity = np.array([[0.9, 0.1, 0.1, 0.2, 0.3, 0.1, 0.0, 0.0],  # its patient p0 is the nearest
                           [0.9, 0.2, 0.8, 0.7, 0.1, 0.0, 0.0, 0.0],  # p1 (two images) ranked 2nd
                           [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.1]])  # p6 ranked last  # fmt: skip
    table = reidentification(similarity, patients, [{"p0"}, {"p1"}, {"p6", ""}], k=5)
    assert table["top-1"].tolist() == [1, 0, 0] and table["top-5"].tolist() == [1, 1, 0]
    assert table["rank"].tolist() == [1, 2, 8] and table["nearest"].tolist() == [0, 0, 0]
    assert table.loc[1, "contributor distance"] == pytest.approx(0.2) and table.loc[1, "other distance"] == pytest.approx(0.1)
    assert table.loc[0, "margin"] == pytest.approx(0.1 / 0.7)
    assert table.loc[1, "chance top-1"] == pytest.approx(2 / 8) and table.loc[0, "chance top-1"] == pytest.approx(1 / 8)
    assert table.loc[1, "chance top-5"] == pytest.approx(1 - comb(6, 5) / comb(8, 5))
    assert chance(10, 0, 5) == 0 and chance(3, 1, 5) == 1.0
    with pytest.raises(ValueError, match="samples, gallery"):
        reidentification(similarity[:2], patients, [{"p0"}, {"p1"}, {"p2"}])


def test_copies_are_reidentified_and_memorized_new_images_are_at_chance() -> None:
    """Noisy copies of gallery images are found at rank 1 and lie nearer than held-out images; fresh draws do not."""
    from radgazegen.evaluation.privacy import (
        memorized,
        nearest_distance,
        own_share,
        pixel_similarity,
        reidentification,
    )

    rng = np.random.default_rng(1)
    gallery = rng.random((60, 16, 16))
    patients = [f"p{i}" for i in range(60)]
    copies = np.clip(gallery[:20] + rng.normal(0, 0.05, (20, 16, 16)), 0, 1)
    fresh, held = rng.random((20, 16, 16)), rng.random((40, 16, 16))
    contributors = [{f"p{i}"} for i in range(20)]
    copied = reidentification(pixel_similarity(copies, gallery), patients, contributors)
    new = reidentification(pixel_similarity(fresh, gallery), patients, contributors)
    assert copied["top-1"].mean() == 1.0 and new["top-1"].mean() <= 0.1 and (copied["margin"] < 0.5).all()
    held_distance = nearest_distance(pixel_similarity(held, gallery))
    assert memorized(nearest_distance(pixel_similarity(copies, gallery)), held_distance).mean() == 1.0
    assert memorized(nearest_distance(pixel_similarity(fresh, gallery)), held_distance).mean() <= 0.15
    share = own_share(held_distance)
    assert 0 < share.mean() <= 0.1 and set(np.unique(share)) <= {0.0, 1.0}


def test_resnet50_mirrors_torchvision_and_the_siamese_checkpoint_loads(tmp_path) -> None:
    import torch
    from safetensors.torch import save_file

    from radgazegen.errors import DataFormatError, MissingWeightsError
    from radgazegen.evaluation.reidentification import ResNet50, SiameseNetwork, SiameseReidentifier

    assert sum(p.numel() for p in ResNet50(1000).parameters()) == 25_557_032  # torchvision's resnet50
    torch.manual_seed(0)
    network = SiameseNetwork().eval()
    names = set(network.state_dict())
    assert {"model.conv1.weight", "model.layer4.2.bn3.running_var", "model.layer1.0.downsample.0.weight",
            "model.fc.weight", "fc_end.bias"} <= names  # fmt: skip
    torch.save(network.state_dict(), tmp_path / "reid.pth")
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, tmp_path / "reid.safetensors")
    images = np.random.default_rng(0).random((3, 40, 40))
    scores = []
    for name in ("reid.pth", "reid.safetensors"):
        loaded = SiameseReidentifier(tmp_path / name)
        features = loaded.embed(images)
        assert features.shape == (3, 128)
        scores.append(loaded.similarity(features, features[:2]))
    np.testing.assert_allclose(scores[0], scores[1], atol=1e-6)
    with torch.no_grad():  # CheXGenBench's score: sigmoid of forward(img1, img2)
        x = loaded.prepare(images)
        direct = torch.sigmoid(network(x[:1], x[1:2])).item()
    assert scores[0][0, 1] == pytest.approx(direct, abs=1e-5)
    with pytest.raises(MissingWeightsError, match="not found"):
        SiameseReidentifier(tmp_path / "none.pth")
    torch.save({"model.conv1.weight": torch.zeros(64, 3, 7, 7)}, tmp_path / "partial.pth")
    with pytest.raises(DataFormatError, match="missing"):
        SiameseReidentifier(tmp_path / "partial.pth")
    torch.save({"other": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(DataFormatError, match="Siamese"):
        SiameseReidentifier(tmp_path / "other.pth")


def test_rad_dino_features_load_from_a_local_folder(tmp_path) -> None:
    import torch
    from synthetic import tiny_rad_dino

    from radgazegen.errors import MissingWeightsError
    from radgazegen.evaluation.quality import RadDinoFeatures

    model, processor = tiny_rad_dino(tmp_path / "rad-dino")
    images = np.random.default_rng(0).random((3, 32, 32))
    features = RadDinoFeatures(tmp_path / "rad-dino", batch_size=2)(images)
    assert features.shape == (3, 16)
    pixels = torch.from_numpy(np.round(images * 255).astype(np.uint8))[:, None].repeat(1, 3, 1, 1)
    with torch.no_grad():
        expected = model(**processor(images=list(pixels), return_tensors="pt")).pooler_output.numpy()
    np.testing.assert_allclose(features, expected, atol=1e-5)
    with pytest.raises(MissingWeightsError, match="not found"):
        RadDinoFeatures(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingWeightsError, match="no readable"):
        RadDinoFeatures(tmp_path / "empty")


def test_precision_recall_density_coverage_follow_their_definitions() -> None:
    from radgazegen.evaluation.quality import precision_recall_density_coverage

    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(60, 4)), rng.normal(size=(50, 4))
    found = precision_recall_density_coverage(real, fake, k=5)
    distance = np.linalg.norm(real[:, None] - fake[None], axis=-1)
    radii = np.sort(np.linalg.norm(real[:, None] - real[None], axis=-1), axis=1)[:, 5]
    inside = distance < radii[:, None]
    assert found["precision"] == pytest.approx(inside.any(0).mean())
    assert found["density"] == pytest.approx(inside.sum(0).mean() / 5)
    assert found["coverage"] == pytest.approx((distance.min(1) < radii).mean())
    far = precision_recall_density_coverage(real, fake + 100, k=5)
    assert far["precision"] == far["recall"] == far["coverage"] == 0.0


def test_export_samples_writes_chexgenbench_layout_and_labels_own_patient_controls(phantom_dir, trained_run, tmp_path,
                                                                                   capsys) -> None:  # fmt: skip
    import shutil

    import pandas as pd
    from PIL import Image

    from radgazegen.cli import main
    from radgazegen.evaluation.chexgenbench import COLUMNS, PROMPTS_FILE

    run = shutil.copytree(trained_run, tmp_path / "run")
    common = ["--preset", "smoke", "--data", str(phantom_dir), "--run-dir", str(run)]
    assert main(["export-samples", *common, "--configuration", "donor", "--out", str(tmp_path / "donor")]) == 0
    table = pd.read_csv(tmp_path / "donor" / PROMPTS_FILE)
    assert list(table.columns) == list(COLUMNS) and not table["own_patient_controls"].any()
    assert set(table["anatomy"]) == {"donor"} and table["prompt"].str.len().min() > 0
    image = Image.open(tmp_path / "donor" / table.loc[0, "img_savename"])
    assert image.mode == "L" and image.size == (32, 32)
    assert len(table) == len({*table["img_savename"]}) and (table["copy"] >= 0).all()
    assert main(["export-samples", *common, "--configuration", "both", "--out", str(tmp_path / "both")]) == 0
    assert pd.read_csv(tmp_path / "both" / PROMPTS_FILE)["own_patient_controls"].all()
    assert "not comparable" in capsys.readouterr().out
    assert main(["export-samples", *common, "--configuration", "both", "--out", str(tmp_path / "both")]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["export-samples", *common, "--configuration", "nothing", "--out", str(tmp_path / "x")]) == 1
    assert "no configuration 'nothing'" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_donors_are_training_readings_of_another_patient_without_findings() -> None:
    from types import SimpleNamespace

    from radgazegen.evaluation.bank import donor_cases

    def reading(id_: str, subject: str, split: str = "train", findings: tuple = ()) -> SimpleNamespace:
        return SimpleNamespace(id=id_, subject_id=subject, split=split, positive_labels=lambda: list(findings))

    readings = [reading("r1", "s1"), reading("r2", "s1"), reading("r3", "s2"), reading("r4", "s3", findings=("Mass",)),
                reading("r5", "s4", split="test")]  # fmt: skip
    def data(cases: list) -> object:
        return type("Data", (), {"root": "phantom", "__iter__": lambda self: iter(cases)})()

    dataset = data(readings)
    for seed in range(5):
        donors = donor_cases(dataset, readings[:4], seed)
        assert [d.id for d in donors][:2] == ["r3", "r3"]  # s1's readings: only r3 is normal and of another patient
        assert all(d.subject_id != c.subject_id and d.split == "train" and not d.positive_labels()
                   for d, c in zip(donors, readings, strict=False))  # fmt: skip
    with pytest.raises(ValueError, match="another patient"):
        donor_cases(data(readings[:2]), [readings[0]], 0)  # every training reading is the patient's own
