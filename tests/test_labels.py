"""Label CSVs: CheXpert / MIMIC-CXR-JPG uncertainty policies and MIMIC-CXR-LT splits, on small files and broken ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radgazegen.data.labels import CHEXPERT_CLASSES, read_chexpert_labels, read_longtail_split
from radgazegen.errors import DataFormatError

CHEXPERT = """Path,Sex,Age,Frontal/Lateral,AP/PA,Cardiomegaly,Edema,Pleural Effusion
patient1/study1/view1_frontal.jpg,Male,60,Frontal,AP,1.0,-1.0,
patient2/study1/view1_frontal.jpg,Female,41,Frontal,PA,0.0,,-1.0
patient3/study1/view2_lateral.jpg,Female,77,Lateral,,-1.0,1.0,0.0
"""
CLASSES = ["Cardiomegaly", "Edema", "Pleural Effusion"]


def _write(tmp_path: Path, text: str, name: str = "labels.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_uncertain_labels_follow_the_policy_and_blanks_are_negative(tmp_path: Path) -> None:
    path = _write(tmp_path, CHEXPERT)
    ones = read_chexpert_labels(path, "ones", CLASSES)
    zeros = read_chexpert_labels(path, "zeros", CLASSES)
    np.testing.assert_array_equal(ones[CLASSES].to_numpy(), [[1, 1, 0], [0, 0, 1], [1, 1, 0]])
    np.testing.assert_array_equal(zeros[CLASSES].to_numpy(), [[1, 0, 0], [0, 0, 0], [0, 1, 0]])
    assert (ones[CLASSES].dtypes == np.uint8).all()
    assert ones["Path"].iloc[2] == "patient3/study1/view2_lateral.jpg" and ones["AP/PA"].iloc[2] == ""
    assert list(ones["Frontal/Lateral"]) == ["Frontal", "Frontal", "Lateral"]


def test_mimic_chexpert_csv_labels_studies(tmp_path: Path) -> None:
    header = "subject_id,study_id," + ",".join(CHEXPERT_CLASSES)
    rows = ["10000032,50414267," + ",".join(["1.0", "", "-1.0"] + [""] * 11),
            "10000032,53189527," + ",".join(["", "0.0", "1.0"] + ["0.0"] * 11)]  # fmt: skip
    table = read_chexpert_labels(_write(tmp_path, "\n".join([header, *rows]) + "\n"), "zeros")
    assert table["study_id"].tolist() == [50414267, 53189527] and table["subject_id"].dtype == np.int64
    np.testing.assert_array_equal(table[list(CHEXPERT_CLASSES[:3])].to_numpy(), [[1, 0, 0], [0, 0, 1]])
    assert table[list(CHEXPERT_CLASSES)].to_numpy().sum() == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            CHEXPERT.replace("-1.0,1.0,0.0", "-1.0,2.0,0.0"),
            r"row 3: column 'Edema' value '2.0' is not 1, 0, -1 or blank",
        ),
        (CHEXPERT.replace("0.0,,-1.0", "0.0,yes,-1.0"), r"row 2: column 'Edema' value 'yes'"),
        (CHEXPERT.replace(",Edema,", ",Oedema,"), r"missing label column\(s\) \['Edema'\]"),
        (CHEXPERT.replace("Path,", "Image,"), "no 'Path' column nor"),
        ("Path,Cardiomegaly,Edema,Pleural Effusion\n", "no data rows"),
    ],
)
def test_malformed_chexpert_files_name_file_row_and_column(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(DataFormatError, match=message) as caught:
        read_chexpert_labels(path, "ones", CLASSES)
    assert str(caught.value).startswith(str(path))


def test_missing_file_and_unknown_policy(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="file not found"):
        read_chexpert_labels(tmp_path / "absent.csv")
    with pytest.raises(ValueError, match="policy"):
        read_chexpert_labels(_write(tmp_path, CHEXPERT), "maybe", CLASSES)


LONGTAIL = """subject_id,study_id,dicom_id,path,Atelectasis,No Finding,Pneumoperitoneum
14659758,50109927,2c294aa8,files/p14/p14659758/s50109927/2c294aa8.jpg,1,0,0
19043685,50124517,ec3e043e,files/p19/p19043685/s50124517/ec3e043e.jpg,0,1,0
13031024,50637311,d301d789,files/p13/p13031024/s50637311/d301d789.jpg,0,0,1
"""


def test_longtail_split_classes_are_the_non_metadata_columns(tmp_path: Path) -> None:
    table, classes = read_longtail_split(_write(tmp_path, LONGTAIL))
    assert classes == ["Atelectasis", "No Finding", "Pneumoperitoneum"]
    np.testing.assert_array_equal(table[classes].to_numpy(), np.eye(3))
    assert table["path"].iloc[0].endswith("2c294aa8.jpg") and table["study_id"].dtype == np.int64
    nih = "id,subj_id,Hernia,No Finding\n00000001_000.png,1,1,0\n"
    assert read_longtail_split(_write(tmp_path, nih, "nih.csv"))[1] == ["Hernia", "No Finding"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (LONGTAIL.replace("jpg,0,0,1", "jpg,0,0,"), r"row 3: column 'Pneumoperitoneum' value '' is not 1, 0"),
        (LONGTAIL.replace("jpg,1,0,0", "jpg,-1,0,0"), r"row 1: column 'Atelectasis' value '-1'"),
        (
            LONGTAIL.replace("path,Atelectasis", "path,ViewPosition,Atelectasis").replace("jpg,", "jpg,PA,"),
            r"column 'ViewPosition' value 'PA' is not 1, 0 \(every column but",
        ),
        (LONGTAIL.replace("dicom_id,path,", "image,picture,"), "no image column"),
        ("subject_id,path\n1,a.jpg\n", "no class columns"),
    ],
)
def test_malformed_longtail_splits(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DataFormatError, match=message):
        read_longtail_split(_write(tmp_path, text))
