"""Probe radgazegen as a new user would: corrupted copies of a phantom, bad API arguments, damaged checkpoints.

Every case says what it expects: an error (of the named kind, naming the file where there is one), a warning
(a documented policy), or success. Each outcome is one of

* ``named``: the expected error or warning, naming what it should name, or success where success is expected;
* ``raw crash``: another exception (a traceback that names no file or problem);
* ``silently wrong``: no error or warning where one is expected (or a wrong result).

Prints the counts and every case that is not ``named``; writes ``radgazegen/benchmark_results/bad_input_cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from radgazegen.controls.gaze import egd_heatmap, fixation_heatmap
from radgazegen.controls.texture import texture_maps
from radgazegen.data.egd import read_egd_fixations, read_master_sheet
from radgazegen.data.images import load_image
from radgazegen.data.labels import CHEXPERT_CLASSES, read_chexpert_labels, read_longtail_split
from radgazegen.data.phantom import generate_phantom
from radgazegen.data.phantom.truth import read_findings
from radgazegen.data.reflacx import (
    FIXATION_COLUMNS,
    IgnoredColumnsWarning,
    ReflacxDataset,
    read_chest_box,
    read_ellipses,
    read_fixations,
    read_metadata,
    read_words,
)
from radgazegen.errors import ControlError, DataFormatError, MissingWeightsError
from radgazegen.models.checkpoint import CheckpointWarning
from radgazegen.models.pipeline import RadGazeGenPipeline
from radgazegen.models.assembly import pipeline_from_run
from radgazegen.models.train import read_log, train
from radgazegen.presets import get_preset

SMOKE = get_preset("smoke")
NAMED_ERRORS = (DataFormatError, MissingWeightsError, ControlError, ValueError)
BAD_NUMBERS = ["inf", "-inf", "Infinity", "1e400", "nan", "abc", ""]


@dataclass
class Case:
    """``action()`` and what it should do: raise ``error`` whose message has ``names``, warn ``warning``, or succeed."""

    name: str
    action: Callable[[], object]
    error: type[Exception] | None = None
    warning: type[Warning] | None = None
    names: str = ""

    def run(self) -> tuple[str, str]:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                self.action()
        except Exception as err:  # noqa: BLE001 - classifying every outcome is the point
            text = f"{type(err).__name__}: {err}"
            if self.error is not None and isinstance(err, self.error) and self.names in str(err):
                return "named", text
            return ("raw crash" if not isinstance(err, NAMED_ERRORS) else "wrong error"), text
        if self.error is not None:
            return "silently wrong", "no error"
        if self.warning is not None:
            found = [w for w in caught if issubclass(w.category, self.warning) and self.names in str(w.message)]
            return ("named", str(found[0].message)) if found else ("silently wrong", "no warning")
        return "named", "ok"


def damaged(source: Path, root: Path, name: str, change: Callable[[Path], None]) -> Path:
    """A copy of the folder ``source`` under ``root``, changed by ``change``."""
    copy = Path(shutil.copytree(source, root / name))
    change(copy)
    return copy


def edit_csv(path: Path, change: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    change(pd.read_csv(path, dtype=str, keep_default_na=False)).to_csv(path, index=False)


def set_cell(column: str, value: str, row: int = 0) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[row, column] = value
        return frame

    return change


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def reader_files(phantom: Path, root: Path) -> list[tuple[str, Path, Callable, list[str]]]:
    """Every CSV reader with a valid file (read from a copy at the same path below another folder) and its numeric
    columns."""
    case = next(folder for folder in sorted((phantom / "main_data").glob("P*"))  # a reading with a finding
                if len((folder / "anomaly_location_ellipses.csv").read_text().splitlines()) > 1)  # fmt: skip
    extra = root / "extra"
    extra.mkdir()
    chexpert = extra / "train.csv"
    chexpert.write_text("Path," + ",".join(CHEXPERT_CLASSES) + "\n" + "a.jpg," + ",".join(["1.0"] * 14) + "\n")
    longtail = extra / "longtail.csv"
    longtail.write_text("path,subject_id,Atelectasis\nfiles/a.jpg,1,1\n")
    egd = extra / "fixations.csv"
    egd.write_text("DICOM_ID,FPOGS,FPOGD,X_ORIGINAL,Y_ORIGINAL\nd1,0.1,0.2,100,200\n")
    master = extra / "master_sheet.csv"
    master.write_text("dicom_id,normal\nd1,1\n")
    return [
        ("fixations.csv", case / "fixations.csv", read_fixations, list(FIXATION_COLUMNS)),
        ("timestamps_transcription.csv", case / "timestamps_transcription.csv", read_words,
         ["timestamp_start_word", "timestamp_end_word"]),
        ("anomaly_location_ellipses.csv", case / "anomaly_location_ellipses.csv", read_ellipses,
         ["xmin", "ymin", "xmax", "ymax", "certainty"]),
        ("chest_bounding_box.csv", case / "chest_bounding_box.csv", read_chest_box, ["xmin", "ymin", "xmax", "ymax"]),
        ("metadata_phase_3.csv", phantom / "main_data" / "metadata_phase_3.csv", read_metadata,
         ["image_size_x", "image_size_y", "Atelectasis"]),
        ("findings.csv", phantom / "phantom" / "findings.csv", lambda p: read_findings(p.parent.parent), []),
        ("chexpert train.csv", chexpert, read_chexpert_labels, list(CHEXPERT_CLASSES[:3])),  # blank: negative
        ("long-tail split", longtail, read_longtail_split, ["subject_id", "Atelectasis"]),
        ("EGD fixations.csv", egd, read_egd_fixations, ["FPOGS", "FPOGD", "X_ORIGINAL", "Y_ORIGINAL"]),
        ("EGD master_sheet.csv", master, read_master_sheet, []),
    ]  # fmt: skip


def csv_cases(phantom: Path, root: Path) -> list[Case]:
    cases = []
    for label, source, reader, numeric in reader_files(phantom, root):
        bad = [v for v in BAD_NUMBERS if v or reader is not read_chexpert_labels]  # a blank CheXpert label is valid
        for k, (column, value) in enumerate((c, v) for c in numeric for v in bad):
            folder = root / f"csv-{len(cases)}-{k}" / source.parent.name
            folder.mkdir(parents=True)
            path = shutil.copy(source, folder / source.name)
            edit_csv(Path(path), set_cell(column, value))
            cases.append(Case(f"{label}: {column} = {value!r}", lambda r=reader, p=Path(path): r(p), DataFormatError,
                              names=str(path)))  # fmt: skip
        for kind, text in (("a repeated header", None), ("a row longer than the header", ",extra")):
            folder = root / f"csv-{label.replace(' ', '_')}-{kind.replace(' ', '_')}" / source.parent.name
            folder.mkdir(parents=True)
            path = Path(shutil.copy(source, folder / source.name))
            lines = path.read_text().splitlines()
            header = lines[0].split(",")
            if text is None:
                lines[0] = ",".join([*header, header[0]])
            else:
                lines[1] = lines[1] + text
            path.write_text("\n".join(lines) + "\n")
            cases.append(Case(f"{label}: {kind}", lambda r=reader, p=path: r(p), DataFormatError, names=str(path)))
    return cases


def dataset_cases(phantom: Path, root: Path) -> list[Case]:
    meta3 = Path("main_data") / "metadata_phase_3.csv"
    first_id = pd.read_csv(phantom / "main_data" / "metadata_phase_1.csv", dtype=str)["id"][0]

    def with_meta(name: str, change) -> Path:
        return damaged(phantom, root, name, lambda d: edit_csv(d / meta3, change))

    year = with_meta("year", lambda f: f.assign(study_year="2019"))
    traversal = with_meta("traversal", set_cell("id", "../../x"))
    twice = with_meta("twice", set_cell("id", first_id))
    outside = with_meta("outside", set_cell("image", "../../etc/passwd"))
    size = with_meta("size", set_cell("image_size_x", "4000"))
    size_id = pd.read_csv(size / meta3, dtype=str)["id"][0]
    phase = damaged(phantom, root, "phase", lambda d: (d / meta3).rename(d / "main_data" / "metadata_phase_x.csv"))
    flat = root / "flat.png"
    from PIL import Image

    Image.fromarray(np.full((16, 16), 90, np.uint8)).save(flat)
    huge = damaged(phantom, root, "huge", lambda d: None)
    fixations = sorted((huge / "main_data").glob("P*"))[0] / "fixations.csv"
    edit_csv(fixations, lambda f: f.assign(timestamp_start_fixation="-1e308", timestamp_end_fixation="1e308"))
    return [
        Case("extra metadata column study_year", lambda: ReflacxDataset(year), warning=IgnoredColumnsWarning,
             names="study_year"),
        Case("id ../../x", lambda: ReflacxDataset(traversal), DataFormatError, names="not a plain name"),
        Case("one id in two phase files", lambda: ReflacxDataset(twice), DataFormatError, names="is also in"),
        Case("image path outside the data set", lambda: ReflacxDataset(outside), DataFormatError,
             names="not a relative path inside"),
        Case("image_size_x differs from the image", lambda: ReflacxDataset(size).case(size_id).load_image(),
             DataFormatError, names="image_size_x=4000"),
        Case("metadata_phase_x.csv", lambda: ReflacxDataset(phase), DataFormatError, names="metadata_phase_x.csv"),
        Case("constant PNG radiograph", lambda: load_image(flat), DataFormatError, names="flat.png: image is constant"),
        Case("fixation timestamps -1e308 / 1e308", lambda: read_fixations(fixations), DataFormatError,
             names="overflows"),
    ]  # fmt: skip


def api_cases(phantom: Path, pipe: RadGazeGenPipeline) -> list[Case]:
    case = next(iter(ReflacxDataset(phantom)))
    fixations = case.fixations()
    size = SMOKE.control_size
    edges = {"canny": np.eye(size, dtype=np.float32)}

    def sample(prompt="Small left pneumothorax.", controls=edges, **kwargs):
        return lambda: pipe(prompt, controls, num_inference_steps=kwargs.pop("steps", 2), progress=False, **kwargs)

    heatmap = lambda f: lambda: fixation_heatmap(f, case.image_shape, (32, 32))  # noqa: E731
    return [
        Case("control given as a string", sample(controls={"canny": "edges.png"}), ControlError),
        Case("controls given as a string", sample(controls="canny"), ControlError),
        Case("prompt=[]", sample(prompt=[]), ValueError, names="prompt"),
        Case("prompt=None", sample(prompt=None), ValueError, names="prompt"),
        Case("num_images_per_prompt=0", sample(num_images_per_prompt=0), ValueError, names="num_images_per_prompt"),
        Case("num_inference_steps=0", sample(steps=0), ValueError, names="num_inference_steps"),
        Case("control scale nan", sample(control_scales=float("nan")), ValueError, names="control_scales"),
        Case("control_scales key naming no control", sample(control_scales={"gazee": 0.0}), ControlError,
             names="gazee"),
        Case("guidance start after end", sample(control_guidance_start=0.8, control_guidance_end=0.4), ValueError),
        Case("guidance window holding no step", sample(guidance_interval=(0.75, 0.8), steps=4), ValueError),
        Case("guidance_scale inf", sample(guidance_scale=float("inf")), ValueError, names="guidance_scale"),
        Case("texture_maps of a (0, 0) image", lambda: texture_maps(np.zeros((0, 0)), "glcm_Contrast"), ValueError),
        Case("texture_maps of an object array", lambda: texture_maps(np.array([[1, "a"]], object), "glcm_Contrast"),
             ValueError),
        Case("texture_maps of a 1x1 image", lambda: texture_maps(np.array([[0.5]]), "firstorder_Mean"), ValueError),
        Case("fixation_heatmap with string columns", heatmap(fixations.astype(str).assign(x_position="12px")),
             DataFormatError, names="x_position"),
        Case("fixation_heatmap with a NaN duration", heatmap(fixations.assign(timestamp_end_fixation=np.nan)),
             DataFormatError, names="timestamp_end_fixation"),
        Case("fixation_heatmap with sigma 0", heatmap(fixations.assign(angular_resolution_x_pixels_per_degree=0.0)),
             DataFormatError, names="must be positive"),
        Case("egd_heatmap with sigma 0", lambda: egd_heatmap(pd.DataFrame(
            {"X_ORIGINAL": [1.0], "Y_ORIGINAL": [1.0], "FPOGD": [0.2]}), (8, 8), sigma=0.0), ValueError),
    ]  # fmt: skip


def pipeline_cases(pipe: RadGazeGenPipeline, root: Path) -> list[Case]:
    saved = pipe.save_pretrained(root / "saved")
    index = json.loads((saved / "model_index.json").read_text())
    no_unet = json.dumps({k: v for k, v in index.items() if k != "unet"})
    folders = {
        "invalid model_index.json": (damaged(saved, root, "p1", lambda d: (d / "model_index.json").write_text("{x")),
                                     DataFormatError, "model_index.json"),
        "model_index.json without unet": (damaged(saved, root, "p2", lambda d: (d / "model_index.json").write_text(
            no_unet)), DataFormatError, "unet"),
        "truncated UNet weights": (damaged(saved, root, "p3", lambda d: truncate(
            d / "unet" / "diffusion_pytorch_model.safetensors")), MissingWeightsError, "diffusion_pytorch_model"),
        "truncated ControlNet weights": (damaged(saved, root, "p4", lambda d: truncate(
            d / "controlnet" / "diffusion_pytorch_model.safetensors")), MissingWeightsError, "controlnet"),
        "missing second ControlNet": (damaged(saved, root, "p5", lambda d: shutil.rmtree(d / "controlnet_1")),
                                      MissingWeightsError, "controlnet_1"),
        "changed pipeline code": (damaged(saved, root, "p6", lambda d: (d / "pipeline_radgazegen.py").write_text(
            "import os\n")), DataFormatError, "pipeline_radgazegen.py"),
    }  # fmt: skip
    cases = [Case(f"from_pretrained: {name}", lambda f=folder: RadGazeGenPipeline.from_pretrained(f), error,
                  names=names) for name, (folder, error, names) in folders.items()]  # fmt: skip
    from radgazegen.models import authors

    cases.append(Case("the authors' release: a folder without their layout",
                      lambda: authors.load_release(saved), MissingWeightsError, names="stable_diffusion_v1_5_mimic_15k"))
    from radgazegen.cli import main

    run = ["sample", "--preset", "smoke", "--run-dir", str(root / "cli"), "--pipeline", str(saved), "--mode", "multi",
           "--out", str(root / "cli-samples")]  # fmt: skip

    def cli(arguments: list[str], expected: int) -> Callable[[], None]:
        def call() -> None:
            code = main(arguments)
            if code != expected:
                raise RuntimeError(f"exit code {code}, expected {expected}")

        return call

    cases += [
        Case("radgazegen sample --pipeline <invalid model_index.json>",
             cli([*run[:-2], "--pipeline", str(folders["invalid model_index.json"][0])], 1)),
        Case("radgazegen controls (smoke)", cli(["controls", "--preset", "smoke", "--run-dir", str(root / "cli"),
                                                 "--controls", "canny", "gaze"], 0)),
        Case("radgazegen sample --scale nan", cli([*run, "--scale", "nan"], 1)),
        Case("radgazegen sample --preset smoke (default split test)", cli(run, 0)),
        Case("radgazegen data phantom --n 0", cli(["data", "phantom", "--out", str(root / "none"), "--n", "0"], 1)),
    ]  # fmt: skip
    return cases


def resume_cases(phantom: Path, root: Path) -> list[Case]:
    source = root / "resume"
    dataset = ReflacxDataset(phantom)
    train(SMOKE, source, "base", dataset, steps=4, progress=False)
    base = Path("checkpoints") / "base"

    def resumed(name: str, change, steps: int = 6) -> Callable[[], None]:
        run_dir = damaged(source, root, name, change)
        return lambda: train(SMOKE, run_dir, "base", dataset, steps=steps, progress=False)

    def log_tail(run_dir: Path) -> None:
        log = run_dir / base / "log.jsonl"
        log.write_text(log.read_text() + '{"step": 5, "lo')

    return [
        Case("truncated model.safetensors in the newest checkpoint",
             resumed("r1", lambda d: truncate(d / base / "checkpoint-4" / "model.safetensors")),
             warning=CheckpointWarning, names="model.safetensors"),
        Case("truncated optimizer state in the newest checkpoint",
             resumed("r2", lambda d: truncate(d / base / "checkpoint-4" / "optimizer.safetensors")),
             warning=CheckpointWarning, names="optimizer.safetensors"),
        Case("partial last line in log.jsonl of a finished run", resumed("r3", log_tail, steps=4)),
        Case("partial last line in log.jsonl, resumed", resumed("r4", log_tail)),
        Case("empty latest", resumed("r5", lambda d: (d / base / "latest").write_text(""))),
        Case("stray checkpoint-old folder", resumed("r6", lambda d: (d / base / "checkpoint-old").mkdir())),
        Case("truncated manifest.json", resumed("r7", lambda d: truncate(d / "manifest.json")), DataFormatError,
             names="manifest.json"),
        Case("missing RNG state", resumed("r8", lambda d: (d / base / "checkpoint-4" / "rng-0.safetensors").unlink()),
             warning=CheckpointWarning, names="no longer bit-exact"),
        Case("corrupt line inside log.jsonl", lambda: read_log(damaged(source, root, "r9", lambda d: (
            d / base / "log.jsonl").write_text('{"st\n' + (d / base / "log.jsonl").read_text())) / base),
             DataFormatError, names="line 1"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="radgazegen/benchmark_results/bad_input_cpu.json")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bad-input-"))
    try:
        phantom = generate_phantom(root / "phantom", n=10, seed=3, size=(192, 160), progress=False)
        run_dir = root / "run"
        train(SMOKE, run_dir, "base", ReflacxDataset(phantom), progress=False)
        train(SMOKE, run_dir, "controlnet", ReflacxDataset(phantom), controls=["canny", "gaze"], progress=False)
        pipe = pipeline_from_run(run_dir, SMOKE)
        torch.manual_seed(0)
        cases = [*csv_cases(phantom, root), *dataset_cases(phantom, root), *api_cases(phantom, pipe),
                 *pipeline_cases(pipe, root), *resume_cases(phantom, root)]  # fmt: skip
        results = [(case.name, *case.run()) for case in cases]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    counts = {kind: sum(outcome == kind for _, outcome, _ in results)
              for kind in ("named", "raw crash", "wrong error", "silently wrong")}  # fmt: skip
    print(f"cases {len(results)}: " + ", ".join(f"{kind} {n}" for kind, n in counts.items()))
    for name, outcome, detail in results:
        if outcome != "named":
            print(f"  {outcome}: {name}: {detail[:300]}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"cases": len(results), "counts": counts,
                                          "results": [{"case": n, "outcome": o, "detail": d[:500]}
                                                      for n, o, d in results]}, indent=1) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
