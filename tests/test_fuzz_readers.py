"""Property-based check of every CSV reader: a corrupted copy of a valid file reads, or raises a
DataFormatError that names the file; never another exception.

Corruptions (hypothesis draws them): a cell replaced by an awkward value or random text, a header renamed or
repeated, another delimiter, another encoding or a byte-order mark, truncation at any byte, random bytes
inserted, a field dropped or added to a row, a column or a row removed or repeated. At least
:data:`CASES` cases run each time.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from radgazegen.data.egd import read_egd_fixations, read_master_sheet
from radgazegen.data.labels import CHEXPERT_CLASSES, read_chexpert_labels, read_longtail_split
from radgazegen.data.phantom.truth import read_findings
from radgazegen.data.reflacx import read_chest_box, read_ellipses, read_fixations, read_metadata, read_words
from radgazegen.errors import DataFormatError

CASES = 1200
AWKWARD = ["", " ", "nan", "NaN", "inf", "-inf", "Infinity", "1e400", "-1e308", "1e308", "0", "-1", "5", "6",
           "1.5", "True", "false", "yes", "None", "NULL", "\x00", "é", "日本", '"', '""', "'", ",", ";", "\n", "\r",
           "../../x", "/etc/passwd", "0x1F", "1_000", "١٢", "\ufeff", " 3 ", "+7", "--1", "1e-400"]  # fmt: skip


def _chexpert(root: Path) -> Path:
    path = root / "train.csv"
    rows = ["Path," + ",".join(CHEXPERT_CLASSES)]
    rows += [f"patient{i}/study1/view1_frontal.jpg," + ",".join(["1.0", "0.0", "-1.0", ""][(i + k) % 4]
                                                                for k in range(len(CHEXPERT_CLASSES))) for i in range(4)]  # fmt: skip
    path.write_text("\n".join(rows) + "\n")
    return path


def _samples(phantom: Path, root: Path) -> dict[str, tuple[Path, Callable]]:
    """Valid files and the reader of each (a reader takes the file's path)."""
    case = sorted((phantom / "main_data").glob("P*"))[0]
    (root / "main_data").mkdir(parents=True)
    (root / "phantom").mkdir()
    metadata = shutil.copy(phantom / "main_data" / "metadata_phase_1.csv", root / "main_data")
    findings = shutil.copy(phantom / "phantom" / "findings.csv", root / "phantom")
    longtail = root / "longtail.csv"
    longtail.write_text("path,subject_id,Atelectasis,Hernia\nfiles/a.jpg,1,1,0\nfiles/b.jpg,2,0,1\n")
    egd = root / "fixations_egd.csv"
    egd.write_text("DICOM_ID,FPOGS,FPOGD,X_ORIGINAL,Y_ORIGINAL\nd1,0.1,0.2,100,200\nd1,0.4,0.1,120,210\n")
    master = root / "master_sheet.csv"
    master.write_text("dicom_id,cardiomegaly,normal\nd1,1,0\nd2,0,1\n")
    return {
        "fixations": (Path(shutil.copy(case / "fixations.csv", root)), read_fixations),
        "words": (Path(shutil.copy(case / "timestamps_transcription.csv", root)), read_words),
        "ellipses": (Path(shutil.copy(case / "anomaly_location_ellipses.csv", root)), read_ellipses),
        "chest box": (Path(shutil.copy(case / "chest_bounding_box.csv", root)), read_chest_box),
        "metadata": (Path(metadata), read_metadata),
        "findings": (Path(findings), lambda path: read_findings(path.parent.parent)),
        "chexpert": (_chexpert(root), read_chexpert_labels),
        "longtail": (longtail, read_longtail_split),
        "egd fixations": (egd, read_egd_fixations),
        "master sheet": (master, read_master_sheet),
    }


@st.composite
def corruptions(draw, text: str) -> bytes:
    """One random corruption of a CSV file's text, as the bytes to write."""
    lines = text.split("\n")
    rows = [line.split(",") for line in lines]
    kind = draw(st.sampled_from(["cell", "header", "delimiter", "encoding", "truncate", "insert", "ragged", "lines"]))
    value = draw(st.one_of(st.sampled_from(AWKWARD), st.text(max_size=12)))
    if kind in ("cell", "header", "ragged"):
        r = 0 if kind == "header" else draw(st.integers(0, len(rows) - 1))
        c = draw(st.integers(0, max(len(rows[r]) - 1, 0)))
        if kind == "ragged":
            rows[r] = rows[r][:c] + rows[r][c + 1 :] if draw(st.booleans()) else rows[r] + [value]
        elif kind == "header" and draw(st.booleans()) and len(rows[0]) > 1:
            rows[0][c] = rows[0][(c + 1) % len(rows[0])]  # a repeated column name
        else:
            rows[r][c] = value
        return "\n".join(",".join(row) for row in rows).encode("utf-8", "surrogatepass")
    if kind == "lines":
        k = draw(st.integers(0, len(lines) - 1))
        lines = lines[:k] + lines[k + 1 :] if draw(st.booleans()) else lines[: k + 1] + lines[k:]
        return "\n".join(lines).encode()
    if kind == "delimiter":
        return text.replace(",", draw(st.sampled_from([";", "\t", "|", " ", ",,"]))).encode()
    if kind == "encoding":
        encoding = draw(st.sampled_from(["utf-16", "utf-32", "latin-1", "cp1252", "utf-8-sig"]))
        return (text.replace(",", ",é", 1) if encoding in ("latin-1", "cp1252") else text).encode(encoding)
    data = text.encode()
    at = draw(st.integers(0, len(data)))
    if kind == "truncate":
        return data[:at]
    return data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]


def test_corrupted_csv_files_read_or_raise_a_named_error(phantom_dir: Path) -> None:
    root = Path(tempfile.mkdtemp())
    samples = _samples(phantom_dir, root)
    originals = {name: path.read_text() for name, (path, _) in samples.items()}
    ran: list[str] = []

    @settings(max_examples=CASES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def check(data) -> None:
        name = data.draw(st.sampled_from(sorted(samples)))
        path, reader = samples[name]
        corrupted = data.draw(corruptions(originals[name]))
        path.write_bytes(corrupted)
        ran.append(name)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reader(path)
        except DataFormatError as err:
            assert str(err).startswith(str(path)), f"{name}: the error does not name the file: {err}"
        except Exception as err:  # noqa: BLE001 - the property: nothing but a named error
            pytest.fail(f"{name}: {type(err).__name__}: {err}\ncorrupted file:\n{corrupted[:400]!r}")
        finally:
            path.write_text(originals[name])

    try:
        check()
    finally:
        shutil.rmtree(root)
    assert len(ran) >= CASES and set(ran) == set(samples)
