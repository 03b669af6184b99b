"""REFLACX reader on the phantom (exact REFLACX layout) and on damaged copies of it."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest

from radgazegen.data.reflacx import (
    DroppedFixationsWarning,
    ReflacxDataset,
    filter_fixations,
    label_columns,
    read_ellipses,
    read_fixations,
    read_metadata,
    read_words,
)
from radgazegen.errors import DataFormatError


def _first_case_folder(root: Path) -> Path:
    return sorted((root / "main_data").glob("P*"))[0]


def test_reads_every_file_of_every_phase(phantom_dir: Path) -> None:
    dataset = ReflacxDataset(phantom_dir)
    assert len(dataset) == 10
    assert set(dataset.metadata["phase"]) <= {1, 2, 3}
    for case in dataset:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DroppedFixationsWarning)
            fixations = case.fixations()
        assert len(fixations) > 10
        assert fixations["timestamp_start_fixation"].is_monotonic_increasing
        assert case.words()["word"].str.len().gt(0).all()
        assert case.transcription().endswith(".")
        assert {"xmin", "ymin", "xmax", "ymax", "certainty"} <= set(case.ellipses().columns)
        xmin, ymin, xmax, ymax = case.chest_box()
        assert 0 <= xmin < xmax <= case.image_shape[1] and 0 <= ymin < ymax <= case.image_shape[0]
        assert case.image_path.is_file()


def test_labels_come_from_the_header_of_each_phase(phantom_dir: Path) -> None:
    phase12 = read_metadata(phantom_dir / "main_data" / "metadata_phase_1.csv")
    phase3 = read_metadata(phantom_dir / "main_data" / "metadata_phase_3.csv")
    assert "Pleural effusion" in label_columns(phase12) and "Pleural effusion" not in label_columns(phase3)
    assert "Lung nodule or mass" in label_columns(phase3)
    assert phase12["Pleural effusion"].dtype.kind == "i"  # certainty 0-5
    assert phase3["Pleural abnormality"].dtype == bool


def test_label_reader_is_not_hard_coded(tmp_path: Path, phantom_copy: Path) -> None:
    path = phantom_copy / "main_data" / "metadata_phase_1.csv"
    frame = pd.read_csv(path)
    frame["Some new label"] = 3
    frame.to_csv(path, index=False)
    assert "Some new label" in ReflacxDataset(phantom_copy).labels(1)


def test_positive_labels_match_the_ellipses(phantom_dir: Path) -> None:
    for case in ReflacxDataset(phantom_dir):
        ellipses = case.ellipses()
        drawn = {c for c in ellipses.columns[5:] if ellipses[c].any()}
        assert set(case.positive_labels()) == drawn


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("x_position", "abc", "is not a number"),
        ("timestamp_end_fixation", "-5", "is before"),
        ("angular_resolution_x_pixels_per_degree", "0", "must be positive"),
        ("y_position", "", "is empty"),
    ],
)
def test_bad_fixation_values_name_file_row_and_problem(
    phantom_copy: Path, column: str, value: str, problem: str
) -> None:
    path = _first_case_folder(phantom_copy) / "fixations.csv"
    frame = pd.read_csv(path, dtype=str)
    frame.loc[3, column] = value
    frame.to_csv(path, index=False)
    with pytest.raises(DataFormatError, match=problem) as caught:
        read_fixations(path)
    assert caught.value.path == path and caught.value.row == 4
    assert str(path) in str(caught.value) and "row 4" in str(caught.value)


def test_missing_column_is_named(phantom_copy: Path) -> None:
    path = _first_case_folder(phantom_copy) / "fixations.csv"
    pd.read_csv(path).drop(columns=["pupil_area_normalized"]).to_csv(path, index=False)
    with pytest.raises(DataFormatError, match="missing column.*pupil_area_normalized"):
        read_fixations(path)


def test_words_that_end_before_they_start_are_rejected(phantom_copy: Path) -> None:
    path = _first_case_folder(phantom_copy) / "timestamps_transcription.csv"
    frame = pd.read_csv(path)
    frame.loc[0, "timestamp_end_word"] = frame.loc[0, "timestamp_start_word"] - 1
    frame.to_csv(path, index=False)
    with pytest.raises(DataFormatError, match="row 1.*timestamp_end_word.*is before"):
        read_words(path)


def test_non_boolean_ellipse_label_is_rejected(phantom_copy: Path) -> None:
    for folder in sorted((phantom_copy / "main_data").glob("P*")):
        path = folder / "anomaly_location_ellipses.csv"
        frame = pd.read_csv(path, dtype=str)
        if len(frame):
            frame.iloc[0, -1] = "maybe"
            frame.to_csv(path, index=False)
            with pytest.raises(DataFormatError, match="is not a boolean"):
                read_ellipses(path)
            return
    pytest.fail("the phantom has no ellipse")


def test_unknown_id_and_missing_image_and_files(phantom_copy: Path) -> None:
    dataset = ReflacxDataset(phantom_copy)
    with pytest.raises(KeyError, match="unknown REFLACX id 'P999R1'.*metadata_phase_"):
        dataset.case("P999R1")
    case = dataset.case(dataset.ids[0])
    case.image_path.unlink()
    with pytest.raises(DataFormatError, match=f"image 'images/{case.dicom_id}.png' not found"):
        _ = dataset.case(dataset.ids[0]).image_path
    (case.folder / "fixations.csv").unlink()
    with pytest.raises(DataFormatError, match="fixations.csv: file not found"):
        case.fixations()
    with pytest.raises(DataFormatError, match="no metadata_phase"):
        ReflacxDataset(phantom_copy / "images")


def test_malformed_and_empty_csv(tmp_path: Path) -> None:
    empty = tmp_path / "fixations.csv"
    empty.write_text("")
    with pytest.raises(DataFormatError, match="empty"):
        read_fixations(empty)
    ragged = tmp_path / "timestamps_transcription.csv"
    ragged.write_text('word,timestamp_start_word,timestamp_end_word\n"unterminated,1,2\n')
    with pytest.raises(DataFormatError, match="not a readable CSV"):
        read_words(ragged)


def test_out_of_view_fixations_are_dropped_counted_and_reported() -> None:
    base = {
        "timestamp_start_fixation": [0.0, 1.0, 2.0, 3.0],
        "timestamp_end_fixation": [0.5, 1.5, 2.5, 3.5],
        "x_position": [50.0, -10.0, 50.0, 500.0],
        "y_position": [50.0, 50.0, 120.0, 50.0],
        "xmin_shown_from_image": [-100.0, -100.0, -100.0, -100.0],
        "ymin_shown_from_image": [0.0, 0.0, 0.0, 0.0],
        "xmax_shown_from_image": [300.0, 300.0, 300.0, 300.0],
        "ymax_shown_from_image": [100.0, 100.0, 100.0, 100.0],
    }
    with pytest.warns(
        DroppedFixationsWarning, match="dropped 3 of 4.*2 outside the shown rectangle, 1 outside the image"
    ):
        kept = filter_fixations(pd.DataFrame(base), image_shape=(100, 100))
    assert len(kept) == 1
    assert kept.attrs["dropped"].outside_shown == 2 and kept.attrs["dropped"].outside_image == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = filter_fixations(kept, image_shape=(100, 100))  # nothing new dropped: no warning
    assert again.attrs["dropped"].total == 3


def test_mimic_image_paths_resolve_under_an_images_root(phantom_copy: Path, tmp_path: Path) -> None:
    metadata = phantom_copy / "main_data" / "metadata_phase_3.csv"
    frame = pd.read_csv(metadata)
    row = frame.iloc[0]
    frame.loc[0, "image"] = f"physionet.org/files/mimic-cxr/2.0.0/files/p10/p10000032/s5041/{row['dicom_id']}.dcm"
    frame.to_csv(metadata, index=False)
    jpg = tmp_path / "mimic-cxr-jpg" / "files" / "p10" / "p10000032" / "s5041" / f"{row['dicom_id']}.jpg"
    jpg.parent.mkdir(parents=True)
    jpg.write_bytes((phantom_copy / "images" / f"{row['dicom_id']}.png").read_bytes())
    dataset = ReflacxDataset(phantom_copy, tmp_path / "mimic-cxr-jpg")
    assert dataset.case(row["id"]).image_path == jpg
    with pytest.raises(DataFormatError, match="not found"):
        _ = ReflacxDataset(phantom_copy).case(row["id"]).image_path
