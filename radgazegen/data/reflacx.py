"""Reader for the REFLACX data set (eye tracking, transcriptions and annotations on MIMIC-CXR).

Layout (PhysioNet ``reflacx-xray-localization``)::

    main_data/metadata_phase_{1,2,3}.csv
    main_data/<id>/fixations.csv
    main_data/<id>/timestamps_transcription.csv
    main_data/<id>/transcription.txt
    main_data/<id>/anomaly_location_ellipses.csv
    main_data/<id>/chest_bounding_box.csv

Label columns differ between phases (:data:`LABELS`): phase 1 has 15 certainty labels (0-5) and two
presence labels (``Quality issue``, ``Support devices``), phases 2 and 3 another 14 certainty labels and
``Support devices``; ``Other`` holds written labels separated by ``|``. Any other column of a metadata
file is ignored with one :class:`IgnoredColumnsWarning` (never read as a label).
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from radgazegen.data.images import load_image
from radgazegen.data.tables import ColumnKind, check_order, convert_columns, raise_at_first, read_strings, read_table
from radgazegen.errors import DataFormatError, check_shape

METADATA_COLUMNS: dict[str, ColumnKind] = {
    "id": "str",
    "split": "str",
    "eye_tracking_data_discarded": "bool",
    "image": "str",
    "dicom_id": "str",
    "subject_id": "str",
    "image_size_x": "int",
    "image_size_y": "int",
}

CERTAINTY_LABELS: dict[int, tuple[str, ...]] = {
    1: ("Airway wall thickening", "Atelectasis", "Consolidation", "Emphysema", "Enlarged cardiac silhouette",
        "Fibrosis", "Fracture", "Groundglass opacity", "Mass", "Nodule", "Pleural effusion", "Pleural thickening",
        "Pneumothorax", "Pulmonary edema", "Wide mediastinum"),
    2: ("Abnormal mediastinal contour", "Acute fracture", "Atelectasis", "Consolidation",
        "Enlarged cardiac silhouette", "Enlarged hilum", "Groundglass opacity", "Hiatal hernia",
        "High lung volume / emphysema", "Interstitial lung disease", "Lung nodule or mass", "Pleural abnormality",
        "Pneumothorax", "Pulmonary edema"),
}  # fmt: skip
CERTAINTY_LABELS[3] = CERTAINTY_LABELS[2]
PRESENCE_LABELS: dict[int, tuple[str, ...]] = {1: ("Quality issue", "Support devices"), 2: ("Support devices",),
                                               3: ("Support devices",)}  # fmt: skip
LABELS: dict[int, tuple[str, ...]] = {phase: CERTAINTY_LABELS[phase] + PRESENCE_LABELS[phase] for phase in (1, 2, 3)}
"""REFLACX's image-level labels per phase: certainties 0-5, then presence (True / False)."""
OTHER_COLUMN = "Other"  # written additional labels, "|"-separated (a string, not a label column)
CERTAINTY_RANGE = (0, 5)
METADATA_FILE = re.compile(r"metadata_phase_(\d+)\.csv")
SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
"""An ``id`` or ``dicom_id``: a plain file or folder name (no path separators, no leading dot)."""

SHOWN_RECT_COLUMNS = (
    "xmin_shown_from_image",
    "ymin_shown_from_image",
    "xmax_shown_from_image",
    "ymax_shown_from_image",
)
SCREEN_RECT_COLUMNS = (
    "xmin_in_screen_coordinates",
    "ymin_in_screen_coordinates",
    "xmax_in_screen_coordinates",
    "ymax_in_screen_coordinates",
)
FIXATION_COLUMNS: dict[str, ColumnKind] = {
    "timestamp_start_fixation": "float",
    "timestamp_end_fixation": "float",
    "x_position": "float",
    "y_position": "float",
    "pupil_area_normalized": "float",
    "angular_resolution_x_pixels_per_degree": "float",
    "angular_resolution_y_pixels_per_degree": "float",
    "window_width": "float",
    "window_level": "float",
    **{c: "float" for c in SHOWN_RECT_COLUMNS},
    **{c: "float" for c in SCREEN_RECT_COLUMNS},
}
HEATMAP_COLUMNS = ("timestamp_start_fixation", "timestamp_end_fixation", "x_position", "y_position",
                   "angular_resolution_x_pixels_per_degree", "angular_resolution_y_pixels_per_degree",
                   *SHOWN_RECT_COLUMNS)  # fmt: skip
"""The fixation columns a gaze heatmap is made from (:func:`check_fixations`)."""
WORD_COLUMNS: dict[str, ColumnKind] = {"word": "str", "timestamp_start_word": "float", "timestamp_end_word": "float"}
BOX_COLUMNS: dict[str, ColumnKind] = {"xmin": "float", "ymin": "float", "xmax": "float", "ymax": "float"}
ELLIPSE_COLUMNS: dict[str, ColumnKind] = {**BOX_COLUMNS, "certainty": "int"}


class IgnoredColumnsWarning(UserWarning):
    """A metadata file has columns that are neither REFLACX metadata nor the phase's labels; they are not read."""


class DroppedFixationsWarning(UserWarning):
    """Fixations fell outside the image or the rectangle shown on screen and were dropped."""


@dataclasses.dataclass(frozen=True)
class DroppedFixations:
    """How many fixations a filter removed, and why (a fixation outside both counts once, as outside shown)."""

    outside_shown: int = 0
    outside_image: int = 0

    @property
    def total(self) -> int:
        return self.outside_shown + self.outside_image


def filter_fixations(
    fixations: pd.DataFrame, image_shape: tuple[int, int] | None = None, *, source: str = "fixations"
) -> pd.DataFrame:
    """Drop fixations outside the shown rectangle or (when ``image_shape`` is given) outside the image.

    The count of dropped fixations is added to ``result.attrs["dropped"]`` (a
    :class:`DroppedFixations`) and reported with a :class:`DroppedFixationsWarning`.
    """
    missing = [c for c in ("x_position", "y_position", *SHOWN_RECT_COLUMNS) if c not in fixations.columns]
    if missing:
        raise ValueError(f"{source}: missing fixation column(s) {missing}")
    x, y = fixations["x_position"], fixations["y_position"]
    inside_shown = (
        (x >= fixations["xmin_shown_from_image"])
        & (x <= fixations["xmax_shown_from_image"])
        & (y >= fixations["ymin_shown_from_image"])
        & (y <= fixations["ymax_shown_from_image"])
    )
    inside_image = pd.Series(True, index=fixations.index)
    if image_shape is not None:
        height, width = check_shape(image_shape, "image_shape")
        inside_image = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    previous = fixations.attrs.get("dropped", DroppedFixations())
    dropped = DroppedFixations(
        outside_shown=previous.outside_shown + int((~inside_shown).sum()),
        outside_image=previous.outside_image + int((inside_shown & ~inside_image).sum()),
    )
    kept = fixations[inside_shown & inside_image].reset_index(drop=True)
    kept.attrs = {**fixations.attrs, "dropped": dropped}
    newly = dropped.total - previous.total
    if newly:
        warnings.warn(
            f"{source}: dropped {newly} of {len(fixations)} fixation(s) "
            f"({dropped.outside_shown - previous.outside_shown} outside the shown rectangle, "
            f"{dropped.outside_image - previous.outside_image} outside the image)",
            DroppedFixationsWarning,
            stacklevel=2,
        )
    return kept


def read_fixations(path: str | Path, image_shape: tuple[int, int] | None = None) -> pd.DataFrame:
    """Read a REFLACX ``fixations.csv``: validated (:func:`check_fixations`), sorted by start time, out-of-view
    fixations dropped.

    Timestamps are seconds from the start of the reading, positions are image pixels (x = column,
    y = row). ``image_shape`` = (height, width) also drops fixations outside the image; how many
    were dropped is in ``result.attrs["dropped"]``.
    """
    path = Path(path)
    fixations = check_fixations(read_table(path, FIXATION_COLUMNS, allow_empty=True), source=path)
    fixations = fixations.sort_values("timestamp_start_fixation", kind="stable").reset_index(drop=True)
    fixations.attrs["source"] = str(path)
    return filter_fixations(fixations, image_shape, source=str(path))


def check_fixations(fixations: pd.DataFrame, *, source: str | Path = "fixations") -> pd.DataFrame:
    """``fixations`` with the columns a gaze heatmap needs (:data:`HEATMAP_COLUMNS`) as finite floats, else a
    :class:`DataFormatError` naming ``source``, the row and the problem.

    Every fixation ends after it starts with a finite duration, its shown rectangle is ordered and its
    angular resolutions (the Gaussian's sigma, pixels per degree) are positive.
    """
    path = Path(fixations.attrs.get("source", source))
    missing = [c for c in HEATMAP_COLUMNS if c not in fixations.columns]
    if missing:
        raise DataFormatError(path, f"missing fixation column(s) {missing}")
    checked = fixations.copy()
    for column in HEATMAP_COLUMNS:
        numbers = pd.to_numeric(fixations[column], errors="coerce").astype(np.float64)
        raise_at_first(path, ~np.isfinite(numbers.to_numpy()),
                       lambda i, c=column: f"column '{c}' value {fixations[c].iloc[i]!r} is not a finite number")
        checked[column] = numbers
    check_order(path, checked, "timestamp_start_fixation", "timestamp_end_fixation")
    with np.errstate(over="ignore"):
        durations = checked["timestamp_end_fixation"].to_numpy() - checked["timestamp_start_fixation"].to_numpy()
    raise_at_first(path, ~np.isfinite(durations), lambda i: "the fixation's duration (end - start) overflows")
    for low, high in (SHOWN_RECT_COLUMNS[0::2], SHOWN_RECT_COLUMNS[1::2]):
        check_order(path, checked, low, high)
    for column in ("angular_resolution_x_pixels_per_degree", "angular_resolution_y_pixels_per_degree"):
        raise_at_first(path, checked[column] <= 0, lambda i, c=column: f"'{c}' must be positive")
    return checked


def read_words(path: str | Path) -> pd.DataFrame:
    """Read ``timestamps_transcription.csv``: one spoken word per row with start and end seconds."""
    path = Path(path)
    words = read_table(path, WORD_COLUMNS, allow_empty=True)
    check_order(path, words, "timestamp_start_word", "timestamp_end_word")
    return words


def read_ellipses(path: str | Path) -> pd.DataFrame:
    """Read ``anomaly_location_ellipses.csv``: bounding boxes of ellipses, certainty, one bool column per label."""
    path = Path(path)
    raw = read_strings(path, allow_empty=True)
    labels = [c for c in raw.columns if c not in ELLIPSE_COLUMNS]
    ellipses = convert_columns(path, raw, {**ELLIPSE_COLUMNS, **{c: "bool" for c in labels}})
    for low, high in (("xmin", "xmax"), ("ymin", "ymax")):
        check_order(path, ellipses, low, high)
    return ellipses


def read_chest_box(path: str | Path) -> tuple[float, float, float, float]:
    """Read ``chest_bounding_box.csv`` as (xmin, ymin, xmax, ymax) in image pixels."""
    path = Path(path)
    box = read_table(path, BOX_COLUMNS)
    check_order(path, box, "xmin", "xmax")
    check_order(path, box, "ymin", "ymax")
    first = box.iloc[0]
    return (float(first["xmin"]), float(first["ymin"]), float(first["xmax"]), float(first["ymax"]))


def metadata_phase(path: str | Path) -> int:
    """The phase of a ``metadata_phase_N.csv`` file (1, 2 or 3), else :class:`DataFormatError`."""
    match = METADATA_FILE.fullmatch(Path(path).name)
    if match is None or int(match.group(1)) not in LABELS:
        raise DataFormatError(path, "not a REFLACX metadata file name (expected metadata_phase_1.csv, "
                                    "metadata_phase_2.csv or metadata_phase_3.csv)")  # fmt: skip
    return int(match.group(1))


def read_metadata(path: str | Path) -> pd.DataFrame:
    """Read one ``metadata_phase_N.csv``: metadata, the phase's labels (:data:`LABELS`) present, ``Other``.

    Certainty labels are integers 0-5, presence labels booleans; columns that are neither are ignored with
    an :class:`IgnoredColumnsWarning`. Ids and DICOM ids must be unique plain names (:data:`SAFE_NAME`), the
    image a relative path inside the data set.
    """
    path = Path(path)
    phase = metadata_phase(path)
    raw = read_strings(path, allow_empty=True)
    kinds: dict[str, ColumnKind] = {name: "int" for name in CERTAINTY_LABELS[phase] if name in raw.columns}
    kinds |= {name: "bool" for name in PRESENCE_LABELS[phase] if name in raw.columns}
    if OTHER_COLUMN in raw.columns:
        kinds[OTHER_COLUMN] = "str"
    ignored = [c for c in raw.columns if c not in METADATA_COLUMNS and c not in kinds]
    if ignored:
        warnings.warn(f"{path}: column(s) {ignored} are not REFLACX phase-{phase} metadata or labels; ignored",
                      IgnoredColumnsWarning, stacklevel=2)  # fmt: skip
    frame = convert_columns(path, raw, {**METADATA_COLUMNS, **kinds})[[*METADATA_COLUMNS, *kinds]]
    for column in ("id", "dicom_id"):
        raise_at_first(path, ~frame[column].map(lambda v: SAFE_NAME.fullmatch(v) is not None),
                       lambda i, c=column: f"'{c}' {frame[c].iloc[i]!r} is not a plain name (letters, digits, _ . -)")
    raise_at_first(path, frame["id"].duplicated(), lambda i: f"duplicate id {frame['id'].iloc[i]!r}")
    raise_at_first(path, ~frame["image"].map(inside_dataset), lambda i: f"'image' {frame['image'].iloc[i]!r} is not a "
                   "relative path inside the data set")  # fmt: skip
    for size in ("image_size_x", "image_size_y"):
        raise_at_first(path, frame[size] <= 0, lambda i, s=size: f"'{s}' must be positive")
    low, high = CERTAINTY_RANGE
    for name in CERTAINTY_LABELS[phase]:
        if name in frame.columns:
            raise_at_first(path, (frame[name] < low) | (frame[name] > high),
                           lambda i, n=name: f"label '{n}' certainty {frame[n].iloc[i]} is not in {low}-{high}")
    frame.attrs["phase"] = phase
    return frame


def inside_dataset(relative: str) -> bool:
    """Whether a path from a data set's table stays inside the data set (relative, no ``..``)."""
    return bool(relative) and not Path(relative).is_absolute() and ".." not in Path(relative).parts


def label_columns(metadata: pd.DataFrame) -> list[str]:
    """The label columns of a metadata table read by :func:`read_metadata`, in file order."""
    known = {name for names in LABELS.values() for name in names}
    return [c for c in metadata.columns if c in known]


@dataclasses.dataclass(frozen=True)
class ReflacxCase:
    """One reading (one radiologist, one image) of a REFLACX data set; files are read on access."""

    id: str
    folder: Path
    image: str  # the metadata's ``image`` entry, resolved by :attr:`image_path`
    image_roots: tuple[Path, ...]  # where to look for it, in order
    image_shape: tuple[int, int]
    phase: int
    split: str
    dicom_id: str
    labels: dict[str, int | bool]
    subject_id: str = ""  # the patient (MIMIC-CXR subject): several readings and images may share one
    source: str = ""  # the metadata file and row this reading comes from

    @property
    def image_path(self) -> Path:
        """The image file; raises :class:`DataFormatError` naming every place looked."""
        return resolve_image(self.image, self.image_roots)

    def load_image(self) -> np.ndarray:
        """The radiograph, float32 in [0, 1] (:func:`~radgazegen.data.images.load_image`), checked against the
        metadata's ``image_size_x`` / ``image_size_y`` (the fixations' coordinates); a mismatch is an error."""
        path = self.image_path
        image, shape = load_image(path)
        if shape != self.image_shape:
            raise DataFormatError(path, f"image is {shape[1]} x {shape[0]} pixels but {self.source} says "
                                        f"image_size_x={self.image_shape[1]}, image_size_y={self.image_shape[0]}")  # fmt: skip
        return image

    def fixations(self, *, drop_outside_image: bool = True) -> pd.DataFrame:
        """Validated fixations; out-of-view fixations dropped and counted in ``attrs["dropped"]``."""
        return read_fixations(self.folder / "fixations.csv", self.image_shape if drop_outside_image else None)

    def words(self) -> pd.DataFrame:
        return read_words(self.folder / "timestamps_transcription.csv")

    def transcription(self) -> str:
        path = self.folder / "transcription.txt"
        if not path.is_file():
            raise DataFormatError(path, "file not found")
        return path.read_text(encoding="utf-8").strip()

    def ellipses(self) -> pd.DataFrame:
        return read_ellipses(self.folder / "anomaly_location_ellipses.csv")

    def chest_box(self) -> tuple[float, float, float, float]:
        return read_chest_box(self.folder / "chest_bounding_box.csv")

    def positive_labels(self, min_certainty: int = 1) -> list[str]:
        """Labels present in this reading (certainty >= ``min_certainty``, or True)."""
        return [k for k, v in self.labels.items() if (v is True) or (not isinstance(v, bool) and v >= min_certainty)]


class ReflacxDataset:
    """All readings of a REFLACX folder (any of the three phases present).

    ``images_root`` is where the MIMIC-CXR images live (the metadata ``image`` column is resolved
    relative to it, then relative to the data set folder, where the phantom keeps its images).
    Readings whose eye-tracking data was discarded are skipped unless ``include_discarded``.
    """

    def __init__(
        self, root: str | Path, images_root: str | Path | None = None, *, include_discarded: bool = False
    ) -> None:
        self.root = Path(root)
        self.images_root = Path(images_root) if images_root is not None else None
        main = self.root / "main_data"
        files = sorted(main.glob("metadata_phase_*.csv"))
        if not files:
            raise DataFormatError(main, "no metadata_phase_*.csv file: not a REFLACX main_data folder")
        tables = []
        self._labels_by_phase: dict[int, list[str]] = {}
        for path in files:
            table = read_metadata(path)
            phase = table.attrs["phase"]
            table.insert(0, "phase", phase)
            table.insert(1, "row", np.arange(1, len(table) + 1))
            tables.append(table)
            self._labels_by_phase[phase] = label_columns(table)
        metadata = pd.concat(tables, ignore_index=True)
        repeated = metadata["id"].duplicated()
        if repeated.any():
            again = metadata[repeated].iloc[0]
            first = metadata[metadata["id"] == again["id"]].iloc[0]
            raise DataFormatError(main / f"metadata_phase_{again['phase']}.csv",
                                  f"id {again['id']!r} is also in metadata_phase_{first['phase']}.csv, row "
                                  f"{first['row']} (each reading must be in one phase file)", row=int(again["row"]))  # fmt: skip
        if not include_discarded:
            metadata = metadata[~metadata["eye_tracking_data_discarded"]].reset_index(drop=True)
        self.metadata = metadata
        self.metadata_files = files

    def __len__(self) -> int:
        return len(self.metadata)

    @cached_property
    def ids(self) -> list[str]:
        return list(self.metadata["id"])

    def labels(self, phase: int) -> list[str]:
        """The label names of one phase, in file order."""
        return list(self._labels_by_phase[phase])

    def case(self, case_id: str) -> ReflacxCase:
        """One reading by its REFLACX id; raises ``KeyError`` naming the id and the files searched."""
        rows = self.metadata.index[self.metadata["id"] == case_id]
        if len(rows) == 0:
            names = ", ".join(str(p) for p in self.metadata_files)
            raise KeyError(f"unknown REFLACX id {case_id!r}: not in {names}")
        row = self.metadata.loc[rows[0]]
        phase = int(row["phase"])
        labels = {
            k: (bool(row[k]) if isinstance(row[k], (bool, np.bool_)) else int(row[k]))
            for k in self._labels_by_phase[phase]
        }
        return ReflacxCase(
            id=case_id,
            folder=self.root / "main_data" / case_id,
            image=str(row["image"]),
            image_roots=(self.images_root, self.root) if self.images_root is not None else (self.root,),
            image_shape=(int(row["image_size_y"]), int(row["image_size_x"])),
            phase=phase,
            split=str(row["split"]),
            dicom_id=str(row["dicom_id"]),
            labels=labels,
            subject_id=str(row["subject_id"]),
            source=f"{self.root / 'main_data' / f'metadata_phase_{phase}.csv'}, row {row['row']}",
        )

    def __iter__(self):
        return (self.case(i) for i in self.ids)


def resolve_image(image: str, roots: tuple[Path, ...]) -> Path:
    """Find the file of a metadata ``image`` entry under ``roots``.

    Each root is tried with the entry as given and, for MIMIC-CXR paths
    (``physionet.org/files/mimic-cxr/2.0.0/files/p10/...``), from its last ``files/`` on, as
    DICOM and as MIMIC-CXR-JPG ``.jpg``. Raises :class:`DataFormatError` naming every place looked.
    """
    relative = Path(image)
    parts = relative.parts
    tails = [relative]
    if "files" in parts:
        tail = Path(*parts[len(parts) - parts[::-1].index("files") - 1 :])
        tails += [tail, tail.with_suffix(".jpg")]
    candidates = [root / t for root in roots for t in tails]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DataFormatError(candidates[0], f"image {image!r} not found (looked in {[str(c) for c in candidates]})")
