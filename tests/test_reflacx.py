"""REFLACX reader on the phantom (exact REFLACX layout) and on damaged copies of it."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest

from radgazegen.data.reflacx import (
    LABELS,
    DroppedFixationsWarning,
    IgnoredColumnsWarning,
    ReflacxDataset,
    filter_fixations,
    label_columns,
    read_chest_box,
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


def test_labels_are_reflacx_label_sets_of_each_phase(phantom_dir: Path) -> None:
    phase1 = read_metadata(phantom_dir / "main_data" / "metadata_phase_1.csv")
    phase3 = read_metadata(phantom_dir / "main_data" / "metadata_phase_3.csv")
    assert label_columns(phase1) == list(LABELS[1]) and len(LABELS[1]) == 17
    assert label_columns(phase3) == list(LABELS[3]) == list(LABELS[2]) and len(LABELS[3]) == 15
    assert phase1["Pleural effusion"].dtype.kind == "i" and phase3["Pleural abnormality"].dtype.kind == "i"  # 0-5
    assert phase1["Quality issue"].dtype == bool and phase3["Support devices"].dtype == bool
    assert "Other" in phase1.columns and "Other" not in label_columns(phase1)  # written labels, a string


def test_unknown_metadata_columns_are_ignored_with_one_warning(phantom_copy: Path) -> None:
    path = phantom_copy / "main_data" / "metadata_phase_1.csv"
    frame = pd.read_csv(path)
    frame["study_year"] = 2019
    frame["Lung nodule or mass"] = 5  # a phase-3 label in a phase-1 file
    frame.to_csv(path, index=False)
    with pytest.warns(IgnoredColumnsWarning, match=r"\['study_year', 'Lung nodule or mass'\].*ignored") as caught:
        dataset = ReflacxDataset(phantom_copy)
    assert len([w for w in caught if issubclass(w.category, IgnoredColumnsWarning)]) == 1
    assert "study_year" not in dataset.labels(1)
    for case in dataset:
        assert "study_year" not in case.labels and "Lung nodule or mass" not in case.positive_labels() or case.phase != 1


def test_certainty_out_of_range_is_named(phantom_copy: Path) -> None:
    path = phantom_copy / "main_data" / "metadata_phase_3.csv"
    frame = pd.read_csv(path)
    frame.loc[1, "Atelectasis"] = 7
    frame.to_csv(path, index=False)
    with pytest.raises(DataFormatError, match=r"metadata_phase_3.csv, row 2: label 'Atelectasis' certainty 7 is not in 0-5"):
        read_metadata(path)


@pytest.mark.parametrize("bad_id", ["../../x", "..", "a/b", ".hidden", ""])
def test_an_id_that_is_not_a_plain_name_is_rejected(phantom_copy: Path, bad_id: str) -> None:
    path = phantom_copy / "main_data" / "metadata_phase_3.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[0, "id"] = bad_id
    frame.to_csv(path, index=False)
    with pytest.raises(DataFormatError, match=r"metadata_phase_3.csv, row 1: 'id' .* is not a plain name"):
        ReflacxDataset(phantom_copy)


def test_an_image_path_outside_the_data_set_is_rejected(phantom_copy: Path) -> None:
    path = phantom_copy / "main_data" / "metadata_phase_3.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[0, "image"] = "../../etc/passwd"
    frame.to_csv(path, index=False)
    with pytest.raises(DataFormatError, match="row 1: 'image' '../../etc/passwd' is not a relative path inside"):
        ReflacxDataset(phantom_copy)


def test_the_same_id_in_two_phase_files_is_an_error_naming_both(phantom_copy: Path) -> None:
    main = phantom_copy / "main_data"
    first = pd.read_csv(main / "metadata_phase_1.csv", dtype=str, keep_default_na=False)
    third = pd.read_csv(main / "metadata_phase_3.csv", dtype=str, keep_default_na=False)
    third.loc[0, "id"] = first.loc[0, "id"]
    third.to_csv(main / "metadata_phase_3.csv", index=False)
    with pytest.raises(DataFormatError, match=rf"metadata_phase_3.csv, row 1: id '{first.loc[0, 'id']}' is also in "
                                              r"metadata_phase_1.csv, row 1"):  # fmt: skip
        ReflacxDataset(phantom_copy)


def test_a_metadata_file_name_without_a_phase_is_named(phantom_copy: Path) -> None:
    main = phantom_copy / "main_data"
    (main / "metadata_phase_1.csv").rename(main / "metadata_phase_x.csv")
    with pytest.raises(DataFormatError, match="metadata_phase_x.csv: not a REFLACX metadata file name"):
        ReflacxDataset(phantom_copy)


def test_image_size_is_checked_against_the_image(phantom_copy: Path) -> None:
    path = phantom_copy / "main_data" / "metadata_phase_3.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[0, "image_size_x"] = "4000"
    frame.to_csv(path, index=False)
    case = ReflacxDataset(phantom_copy).case(frame.loc[0, "id"])
    with pytest.raises(DataFormatError, match=r"\.png: image is \d+ x \d+ pixels but .*metadata_phase_3.csv, row 1 "
                                              r"says image_size_x=4000"):  # fmt: skip
        case.load_image()


@pytest.mark.parametrize("value", ["inf", "-inf", "Infinity", "1e400", "nan"])
def test_non_finite_numbers_are_named(tmp_path: Path, value: str) -> None:
    path = tmp_path / "timestamps_transcription.csv"
    path.write_text(f"word,timestamp_start_word,timestamp_end_word\nright,0.5,0.7\nlung,{value},2\n")
    with pytest.raises(DataFormatError, match=r"row 2: column 'timestamp_start_word' value .* is not (finite|a number)"):
        read_words(path)


def test_fixation_durations_that_overflow_are_named(phantom_copy: Path) -> None:
    path = _first_case_folder(phantom_copy) / "fixations.csv"
    frame = pd.read_csv(path)
    frame.loc[0, "timestamp_start_fixation"] = -1e308
    frame.loc[0, "timestamp_end_fixation"] = 1e308
    frame.to_csv(path, index=False)
    with pytest.raises(DataFormatError, match=r"fixations.csv, row 1: the fixation's duration \(end - start\) overflows"):
        read_fixations(path)


def test_a_repeated_header_or_a_row_longer_than_the_header_is_named(tmp_path: Path) -> None:
    path = tmp_path / "chest_bounding_box.csv"
    path.write_text("xmin,ymin,xmax,xmax\n1,2,3,4\n")
    with pytest.raises(DataFormatError, match=r"column\(s\) \['xmax'\] appear more than once"):
        read_chest_box(path)
    path.write_text("xmin,ymin,xmax,ymax\n1,2,3,4,5\n")
    with pytest.raises(DataFormatError, match="not a readable CSV file.*Expected 4 fields"):
        read_chest_box(path)


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
