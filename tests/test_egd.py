from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radgazegen.controls.gaze import egd_heatmap
from radgazegen.data.egd import egd_fixations_for, read_egd_fixations, read_master_sheet
from radgazegen.errors import DataFormatError

HEADER = "SESSION_ID,MEDIA_ID,DICOM_ID,CNT,TIME (in secs),FPOGX,FPOGY,FPOGS,FPOGD,FPOGID,FPOGV,X_ORIGINAL,Y_ORIGINAL\n"


def test_reads_fixations_and_master_sheet(tmp_path: Path) -> None:
    path = tmp_path / "fixations.csv"
    path.write_text(
        HEADER
        + "1,1,abc,0,0.1,0.5,0.5,0.1,0.3,1,1,100,80\n1,1,abc,1,0.5,0.5,0.5,0.5,0.2,2,1,40,30\n1,2,def,0,0.1,0.5,0.5,0.1,0.4,1,1,10,10\n"
    )
    fixations = read_egd_fixations(path)
    one = egd_fixations_for(fixations, "abc")
    assert list(one["FPOGS"]) == [0.1, 0.5]
    heat = egd_heatmap(one, (120, 160), (12, 16), sigma=5.0)
    assert (
        heat.shape == (12, 16)
        and heat.sum() == pytest.approx(1.0)
        and np.unravel_index(heat.argmax(), heat.shape) == (8, 10)
    )
    with pytest.raises(KeyError, match="unknown EGD-CXR DICOM_ID 'zzz'"):
        egd_fixations_for(fixations, "zzz")
    sheet = tmp_path / "master_sheet.csv"
    sheet.write_text("dicom_id,path,Normal,CHF,pneumonia\nabc,files/a.dcm,0,1,0\n")
    assert read_master_sheet(sheet)["CHF"].iloc[0] == "1"


def test_bad_egd_rows_are_named(tmp_path: Path) -> None:
    path = tmp_path / "fixations.csv"
    path.write_text(HEADER + "1,1,abc,0,0.1,0.5,0.5,0.1,-0.3,1,1,100,80\n")
    with pytest.raises(DataFormatError, match="row 1.*FPOGD.*negative"):
        read_egd_fixations(path)
    path.write_text(HEADER.replace(",X_ORIGINAL", "") + "1,1,abc,0,0.1,0.5,0.5,0.1,0.3,1,1,80\n")
    with pytest.raises(DataFormatError, match="missing column.*X_ORIGINAL"):
        read_egd_fixations(path)
